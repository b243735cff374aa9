# Shared option documentation of the edms.backup modules that read the contents
# of archives; the argument spec that goes with it is
# decryption_argument_spec() in plugins/module_utils/_common.py.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  decryption_key:
    description:
      - The age identity (C(AGE-SECRET-KEY-1...), or the text of an identity
        file) that reads archives encrypted at rest (M(edms.backup.archive_create)'s
        C(encrypt_to)). Given at run time (the roles pass C(edms_decryption_key),
        in AWX the credential type EDMS Archive Decryption Key); it is never
        written to the host, logged or returned.
      - Without it, an encrypted archive's contents cannot be read and the
        module says so; a plain archive is read as always.
    type: str
"""
