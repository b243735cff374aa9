# Shared option documentation of the edms.backup modules that work with the
# backup directory; the argument spec that goes with it is
# backup_dir_argument_spec() in plugins/module_utils/_common.py.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  backup_dir:
    description:
      - Directory on the managed host that holds the collection's archives
        (the roles give C(edms_archive_dir)). Keep it where the application
        cannot write, never the host side of the backend's backup mount
        (preflight_info's check C(archive_store) says why and where).
        M(edms.backup.archive_create) creates it, mode 0700, when only it is
        missing.
      - For M(edms.backup.preflight_info), the application's own backup
        directory, the host side of the backend's backup mount; the
        collection's archives are its O(edms.backup.preflight_info#module:archive_dir).
    type: path
    required: true
  display_timezone:
    description:
      - IANA time zone in which people read times, for example
        C(Asia/Singapore). File names and C(created_at) are always UTC; this
        zone is used for the local times shown beside them.
    type: str
    default: UTC
"""
