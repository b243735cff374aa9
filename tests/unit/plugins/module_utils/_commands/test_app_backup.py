"""The pure parts of app_backup: where a backup the application names is
kept, where that is on the host, and its counts against Step 3's."""

import os

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands.app_backup import (
    compare_counts,
    container_location,
    host_location,
    read_on_host,
    summary,
)

BIND = {"Type": "bind", "Source": "/srv/edms/backups", "Destination": "/app/backups"}
MEDIA = {
    "Type": "volume",
    "Name": "edms_media",
    "Source": "/var/lib/docker/volumes/m/_data",
    "Destination": "/app/storage/media",
}


def test_a_path_under_a_mount_is_kept_by_it_the_deepest_first():
    deeper = {"Type": "bind", "Source": "/elsewhere", "Destination": "/app/backups/nightly"}
    assert container_location("/app/backups/20260101_130029.zip", [MEDIA, BIND]) == (
        "mount",
        BIND,
        "20260101_130029.zip",
    )
    assert container_location("/app/backups/nightly/x.zip", [BIND, deeper]) == (
        "mount",
        deeper,
        "x.zip",
    )


def test_a_path_under_no_mount_is_the_containers_own_known_issue_1():
    assert container_location("/app/backups/x.zip", [MEDIA]) == ("container", None, None)
    # A prefix of a name is no parent directory.
    assert container_location("/app/backups2/x.zip", [BIND])[0] == "container"


@pytest.mark.parametrize(
    "path",
    [
        "backups/x.zip",
        "/app/backups/../../etc/passwd",
        "/app/backups//x.zip",
        "/app/./x",
        7,
        "/app/backups/x\0.zip",
    ],
)
def test_a_path_that_is_not_plain_and_absolute_is_refused(path):
    with pytest.raises(ValueError, match="path"):
        container_location(path, [BIND])


def test_the_host_path_lies_in_the_backup_dir(tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    mount = dict(BIND, Source=str(backups))
    assert host_location(mount, "20260101_130029.zip", str(backups)) == (
        str(backups / "20260101_130029.zip"),
        None,
    )
    other = tmp_path / "other"
    other.mkdir()
    path, why = host_location(dict(BIND, Source=str(other)), "x.zip", str(backups))
    assert path is None
    assert "not in the backup directory" in why


def test_a_named_volume_is_not_the_host_directory(tmp_path):
    path, why = host_location(dict(MEDIA, Destination="/app/backups"), "x.zip", str(tmp_path))
    assert path is None
    assert "volume edms_media" in why


def test_a_link_on_the_way_is_refused(tmp_path):
    backups = tmp_path / "backups"
    (tmp_path / "elsewhere").mkdir()
    backups.mkdir()
    os.symlink(tmp_path / "elsewhere", backups / "nightly")
    path, why = host_location(dict(BIND, Source=str(backups)), "nightly/x.zip", str(backups))
    assert path is None
    assert "a link on the way" in why


LIVE = {
    "documents.Document": {"rows": 60, "visible": 54},
    "users.User": {"rows": 12, "visible": 12},
}


def test_counts_equal_to_what_the_application_shows_pass_with_a_warning_for_hidden_rows():
    table, errors, warnings = compare_counts(
        (LIVE, LIVE), {"documents.document": 54, "users.user": 12}, list(LIVE)
    )
    assert errors == []
    assert table["documents.Document"] == {"live": 54, "rows": 60, "backup": 54, "equal": True}
    assert len(warnings) == 1
    assert "6 rows its default manager hides" in warnings[0]


def test_a_count_that_differs_while_the_live_one_stayed_is_an_error():
    _table, errors, warnings = compare_counts(
        (LIVE, LIVE), {"documents.document": 50, "users.user": 12}, list(LIVE)
    )
    assert len(errors) == 1
    assert "holds 50 documents.Document" in errors[0]
    assert warnings == []


def test_a_count_that_moved_during_the_backup_may_lie_only_between_its_ends():
    later = dict(LIVE, **{"documents.Document": {"rows": 62, "visible": 56}})
    _table, errors, warnings = compare_counts(
        (LIVE, later), {"documents.document": 55, "users.user": 12}, list(LIVE)
    )
    assert errors == []
    assert "changed during the backup" in warnings[0]
    _table, errors, warnings = compare_counts(
        (LIVE, later), {"documents.document": 50, "users.user": 12}, list(LIVE)
    )
    assert len(errors) == 1
    assert "holds 50 documents.Document" in errors[0]


def test_a_model_missing_from_the_backup_is_an_error_unless_left_out_by_design_under_all():
    backup = {"documents.document": 60}
    _t, errors, _w = compare_counts((LIVE, LIVE), backup, list(LIVE))
    assert errors == ["users.User is not in the application's backup (12 rows live)"]
    _t, errors, _w = compare_counts((LIVE, LIVE), backup, "__all__")
    assert errors == ["users.User is not in the application's backup (12 rows live)"]
    live = dict(LIVE, **{"sessions.Session": {"rows": 3, "visible": 3}})
    table, errors, warnings = compare_counts(
        (live, live), dict(backup, **{"users.user": 12}), "__all__"
    )
    assert errors == []
    assert warnings[-1] == "sessions.Session is not in the application's backup (3 rows live)"
    assert table["sessions.Session"]["equal"] is False


def test_summary_lines():
    result = {
        "call": "apps.backup.services.BackupService().execute_backup(configuration, user)",
        "user": "admin",
        "job": {"status": "COMPLETED", "pk": "5b4c"},
        "backup": {
            "container_path": "/app/backups/x.zip",
            "host_path": "/srv/b/x.zip",
            "on_host": {"size": 10, "sha256": "ab" * 32},
        },
        "verification": {"layout": "edms-native zip"},
        "counts": {"users.User": {"backup": 12, "live": 12, "rows": 12, "equal": True}},
    }
    lines = summary(result)
    assert lines[0].endswith("as admin")
    assert "COMPLETED" in lines[1]
    assert lines[-2] == "Counts      users.User: backup 12, live 12 (12 rows)"
    assert lines[-1] == (
        "Restorable  not checked here; rehearse it: playbooks/rehearse.yml"
        " -e edms_archive=/srv/b/x.zip"
    )
    assert summary({"would_run": "manage.py backup_now"}) == ["Would run   manage.py backup_now"]
    assert summary({"would_run": "POST http://x/", "user": "op", "would_land_on_host": None}) == [
        "Would run   POST http://x/ as op",
        "Would land  only inside the container (known issue 1)",
    ]


def test_the_mounted_directory_itself_is_no_backup():
    with pytest.raises(ValueError, match="the mounted directory itself"):
        container_location("/app/backups", [BIND])


def test_a_backup_file_is_read_once_without_following_a_link(tmp_path):
    backup = tmp_path / "20260101_130029.zip"
    backup.write_bytes(b"abc")
    found, source, info = read_on_host(str(backup))
    assert found == {
        "kind": "file",
        "size": 3,
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    }
    assert source.startswith("/proc/self/fd/")
    # The same file is read from there, whatever is put at the name later.
    backup.unlink()
    backup.write_bytes(b"something else")
    with open(source, "rb") as handle:
        assert handle.read() == b"abc"
    assert info.st_size == 3
    link = tmp_path / "link.zip"
    link.symlink_to(tmp_path / "20260101_130029.zip")
    found, _source, _info = read_on_host(str(link))
    assert "a link is never followed" in found["error"]


def test_a_fifo_in_place_of_the_backup_does_not_hang_the_run(tmp_path):
    fifo = tmp_path / "20260101_130029.zip"
    os.mkfifo(fifo)
    found, _source, _info = read_on_host(str(fifo))
    assert found == {"error": f"{fifo} is neither a file nor a directory"}
