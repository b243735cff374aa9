# Shared option documentation of the edms.backup modules that take the proof
# of an earlier verification of the archive (plugins/module_utils/_platform/proof.py).

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  proof:
    description:
      - The RV(proof) a first verification of this archive on this host
        returned (a C(verify_only) or check-mode run of
        M(edms.backup.archive_restore) or M(edms.backup.archive_rollback), or
        M(edms.backup.archive_create) with C(make_proof)). Given with
        O(archive_sha256), and when it holds (made on this host by this
        collection's verification code, less than six hours ago, for that
        sha256) and the file read has that sha256, the archive is not
        verified again; RV(verification) then says so. A proof that does not
        hold (of other bytes, from another host, user or version, too old,
        or not a proof) changes nothing; the archive is verified in full, and
        RV(proof_not_used) says why.
      - A proof is an HMAC under a key that only the user the modules run as
        can read on this host (C(~/.cache/edms-backup/proof.key)); it is made
        by the modules' own verification, never by the caller, so no value
        given here can let through an archive that does not verify.
      - Encrypted archives, and archive files that anyone but their owner
        (the module user or root) may write, are always verified again.
    type: str
"""
