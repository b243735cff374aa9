# Shared option documentation of the edms.backup modules that work with the
# backup directory; the argument spec that goes with it is
# backup_dir_argument_spec() in plugins/module_utils/_common.py.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  backup_dir:
    description:
      - Directory on the managed host that holds the archives (the host side
        of the backend's C(/app/backups) bind mount).
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
