"""What the rehearsal of an application's own backup reports (pure parts)."""

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_rehearse import (
    native_losses,
    native_summary,
)


def row(**changes):
    base = {
        "live": 3,
        "loaded": 3,
        "backup": 3,
        "missing": 0,
        "extra": 0,
        "pk_replaced": 0,
        "fields": {},
    }
    return dict(base, **changes)


MEDIA_EQUAL = {"files": 2, "live_files": 2, "included": True, "differences": []}


def test_nothing_lost_is_no_loss():
    assert native_losses({"users.User": row()}, MEDIA_EQUAL) == {}


def test_each_kind_of_loss_is_one_line_of_its_model():
    models = {
        "documents.Document": row(
            live=60,
            backup=54,
            missing=6,
            loaded=54,
            fields={"created_at": {"rows": 54, "kind": "times cut to milliseconds"}},
        ),
        "backup.BackupConfiguration": row(pk_replaced=2),
        "audit.AuditTrail": row(extra=1),
        "users.User": row(),
    }
    losses = native_losses(models, MEDIA_EQUAL)
    assert losses == {
        "audit.AuditTrail": ["1 rows the live data does not have"],
        "backup.BackupConfiguration": ["2 rows get a new primary key (natural primary keys)"],
        "documents.Document": [
            "6 of 60 live rows are not restored (the backup holds 54)",
            "created_at: 54 rows, times cut to milliseconds",
        ],
    }


def test_media_not_included_is_a_loss_and_different_media_are_listed():
    none = {"files": 0, "live_files": 60, "included": False, "differences": ["60 file(s) x"]}
    assert native_losses({}, none) == {"media": ["media not included: 60 live files"]}
    differ = dict(MEDIA_EQUAL, differences=["1 file(s) different: a.bin"])
    assert native_losses({}, differ) == {"media": ["1 file(s) different: a.bin"]}


def test_the_summary_names_the_archive_the_load_and_each_loss():
    result = {
        "archive": "/srv/backups/20260101_130029.zip",
        "layout": "edms-native zip",
        "database": "edms_test_restore",
        "dropped": True,
        "load": {"objects": 412},
        "media": MEDIA_EQUAL,
        "losses": {"users.User": ["1 rows get a new primary key (natural primary keys)"]},
    }
    lines = native_summary(result)
    assert lines[0] == "Archive     20260101_130029.zip (edms-native zip)"
    assert "412 objects" in lines[1]
    assert (
        lines[-1] == "Differs     users.User: 1 rows get a new primary key (natural primary keys)"
    )
    result["losses"] = {}
    assert native_summary(result)[-1].startswith("Losses      none")
