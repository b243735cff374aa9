# Shared option documentation of the edms.backup modules that work with the
# media files; the argument spec that goes with it is media_dir_argument_spec()
# in plugins/module_utils/_common.py.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  media_dir_container:
    description:
      - Media root inside the backend container (Django's C(MEDIA_ROOT)).
    type: str
    default: /app/storage/media
"""
