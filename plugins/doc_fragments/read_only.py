# Shared documentation of the edms.backup modules that only read (the *_info
# modules): what check mode, diff mode and a second run mean for them.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is no difference to show.
  idempotent:
    support: full
    description: Reads only.
"""
