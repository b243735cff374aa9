"""The whole cycle on the second reference application (lims/), by its
inventory alone (inventories/lims: only the variables the README lists, no
settings module, no required models), proven by per-table digests computed
by PostgreSQL and media hashes computed by sha256sum (tests/pg_digest.py),
neither through Django nor through the collection's code.

The LIMS differs from the demo in every name (services pg, web, instrument;
/srv/lims paths; LIMS_DB_* variables; the settings module only in manage.py;
a password on every connection, the local socket's too; PostgreSQL 18) and
holds the model shapes Django projects have (lims/README.md), each seeded.
"""

import glob
import os
import secrets
import time

import psycopg2
import pytest

from tests import pg_digest
from tests.integration.conftest import BIN, ROOT, ansible_env, run

LIMS = os.path.join(ROOT, "lims")
RUN = os.path.join(LIMS, "run")
COMPOSE_FILE = os.path.join(RUN, "compose.yaml")
INVENTORY = os.path.join(ROOT, "inventories", "lims")
BACKUPS = os.path.join(RUN, "edms-archives")
HOST = "lims-ref"
PORT = 55432
MEDIA = "/srv/lims/uploads"


def compose(*args, **kwargs):
    return run(
        ["docker", "compose", "--project-directory", RUN, "-f", COMPOSE_FILE, *args], **kwargs
    )


def playbook(name, *extra_vars):
    """ansible-playbook playbooks/<name> on the LIMS inventory; not checked."""
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", INVENTORY]
    argv.append(os.path.join(ROOT, "playbooks", name))
    for item in extra_vars:
        argv += ["-e", item]
    env = ansible_env()
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
    env["ANSIBLE_NOCOLOR"] = "1"
    return run(argv, env=env, check=False, timeout=900)


def succeeded(proc):
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc


def environment():
    found = {}
    with open(os.path.join(RUN, ".env"), encoding="utf-8") as handle:
        for line in handle:
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                found[key] = value
    return found


def digests():
    env = environment()
    return pg_digest.table_digests(
        "127.0.0.1", PORT, env["LIMS_DB_NAME"], env["LIMS_DB_USER"], env["LIMS_DB_PASSWORD"]
    )


def web_container():
    return compose("ps", "-q", "web").stdout.strip()


def media():
    return pg_digest.media_hashes(web_container(), MEDIA)


def state():
    return {"tables": digests(), "media": media()}


def archives():
    return set(glob.glob(os.path.join(BACKUPS, "*.zip")))


def new_archive(before):
    """The newest archive not in before (a restore whose first safety backup
    was taken while writers ran takes a second one once they are stopped)."""
    made = archives() - before
    assert made
    return max(made)


def writer(seconds):
    """The instrument service writes for a while, then stops."""
    compose("--profile", "activity", "up", "-d", "instrument")
    time.sleep(seconds)
    compose("--profile", "activity", "stop", "instrument")


@pytest.fixture(scope="module")
def lims():
    run([os.path.join(LIMS, "bin", "stack"), "up"], timeout=1800)
    return RUN


@pytest.fixture(scope="module")
def cycle(lims):
    """Storage; a backup while the instruments write; its verification and
    rehearsal; its restore; a quiet backup of that state; new activity; the
    quiet backup restored; the rollback. The states on the way."""
    succeeded(playbook("storage.yml"))
    found = {}
    compose("--profile", "activity", "up", "-d", "instrument")
    try:
        time.sleep(2)
        before = archives()
        succeeded(playbook("backup.yml"))
        found["under_writes"] = new_archive(before)
    finally:
        compose("--profile", "activity", "stop", "instrument")
    under_writes = found["under_writes"]
    succeeded(playbook("verify.yml", f"edms_archive={under_writes}"))
    succeeded(playbook("rehearse.yml", f"edms_archive={under_writes}"))
    succeeded(
        playbook("restore.yml", f"edms_archive={under_writes}", f"edms_restore_confirm={HOST}")
    )
    found["restored_under_writes"] = state()
    before = archives()
    succeeded(playbook("backup.yml"))
    quiet = new_archive(before)
    found["before"] = state()
    writer(3)
    found["changed"] = state()
    before = archives()
    found["restore"] = succeeded(
        playbook("restore.yml", f"edms_archive={quiet}", f"edms_restore_confirm={HOST}")
    )
    safety = new_archive(before)
    found["after"] = state()
    found["rollback"] = succeeded(
        playbook("rollback.yml", f"edms_archive={safety}", f"edms_restore_confirm={HOST}")
    )
    found["rolled_back"] = state()
    return found


def test_the_instruments_changed_the_data_between_backup_and_restore(cycle):
    assert cycle["changed"]["tables"] != cycle["before"]["tables"]
    assert cycle["changed"]["media"] != cycle["before"]["media"]


def test_a_restore_gives_every_table_and_media_file_back_as_postgresql_digests_it(cycle):
    assert pg_digest.differences(cycle["before"]["tables"], cycle["after"]["tables"]) == []
    assert cycle["after"]["media"] == cycle["before"]["media"]


# Each model shape of lims/README.md and the tables (or view) that hold it.
SHAPES = {
    "natural_key_equal_to_the_primary_key": [
        "personnel_laboratory",
        "personnel_analyst",
        "specimens_freezer",
        "order",
    ],
    "composite_natural_key": ["personnel_instrument", "analyses_measurement"],
    "natural_key_including_a_related_natural_key": ["specimens_freezer", "specimens_specimen"],
    "multi_table_inheritance": ["analyses_assay", "analyses_elisaassay"],
    "proxy_model": ["order"],
    "generic_foreign_keys_to_integer_uuid_and_string_keys": ["ledger_annotation"],
    "self_reference_with_forward_references": ["specimens_aliquot"],
    "m2m_with_its_own_through_model": ["analyses_orderline"],
    "auto_created_m2m": ["specimens_specimen_handled_by", "order_specimens"],
    "symmetrical_m2m_to_self": ["personnel_laboratory_partners"],
    "one_to_one_primary_key": ["specimens_consent"],
    "binary_field": ["personnel_instrument", "analyses_measurement"],
    "json_field_nested_non_ascii_big_integers": ["analyses_measurement", "specimens_consent"],
    "decimal_field": ["analyses_measurement", "LabResult_Archive"],
    "duration_field": ["personnel_instrument", "analyses_assay", "analyses_measurement"],
    "array_field": ["specimens_specimen"],
    "mixed_case_db_table": ["LabResult_Archive"],
    "unmanaged_model_over_a_view": ["lims_laboratory_summary"],
    "default_manager_that_hides_rows": ["specimens_specimen"],
    "signal_receiver_that_ignores_raw": ["ledger_auditentry"],
    "integer_id_gaps": ["analyses_measurement", "LabResult_Archive", "ledger_annotation"],
    "timestamps_with_microseconds_across_dst": ["specimens_specimen", "analyses_measurement"],
    "custom_user_model_with_email_natural_key": ["personnel_analyst"],
    "uuid_primary_key": ["specimens_specimen"],
    "foreign_key_to_a_unique_non_key_field": ["specimens_attachment"],
    "reserved_word_table_and_column": ["order"],
    "generated_field": ["analyses_orderline"],
    "db_default": ["order"],
    "file_field_nested_non_ascii_names": ["specimens_attachment"],
}


@pytest.mark.parametrize("tables", SHAPES.values(), ids=SHAPES.keys())
def test_each_model_shape_round_trips_through_backup_and_restore(cycle, tables):
    before, after = cycle["before"]["tables"], cycle["after"]["tables"]
    for table in tables:
        assert before[table][0] > 0, f"{table} holds no rows: the shape is not exercised"
        assert after[table] == before[table], table


def test_the_shapes_are_in_the_data_as_lims_readme_says(cycle):
    # What makes a shape hard is in the data, not only in the schema.
    env = environment()
    connection = psycopg2.connect(
        host="127.0.0.1",
        port=PORT,
        dbname=env["LIMS_DB_NAME"],
        user=env["LIMS_DB_USER"],
        password=env["LIMS_DB_PASSWORD"],
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM specimens_specimen WHERE archived")
            assert cursor.fetchone()[0] > 0
            cursor.execute("SELECT max(id) > count(*) FROM analyses_measurement")
            assert cursor.fetchone()[0] is True
            cursor.execute(
                "SELECT count(*) FROM specimens_aliquot c JOIN specimens_aliquot p"
                " ON c.parent_id = p.id WHERE c.id < p.id"
            )
            assert cursor.fetchone()[0] > 0
            cursor.execute(
                "SELECT bool_or(collected_at < '2026-03-29 01:00Z')"
                " AND bool_or(collected_at > '2026-10-25 01:00Z')"
                " AND bool_or(extract(microseconds FROM collected_at)::int % 1000000 <> 0)"
                " FROM specimens_specimen"
            )
            assert cursor.fetchone()[0] is True
    finally:
        connection.close()
    media = cycle["after"]["media"]
    assert any(ord(ch) > 127 for path in media for ch in path)
    assert any(path.count("/") >= 2 for path in media)


def test_the_application_logs_in_as_no_superuser(lims):
    # The least privilege the README names: owner of its database, CREATEDB.
    env = environment()
    connection = psycopg2.connect(
        host="127.0.0.1",
        port=PORT,
        dbname=env["LIMS_DB_NAME"],
        user=env["LIMS_DB_USER"],
        password=env["LIMS_DB_PASSWORD"],
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user"
            )
            assert cursor.fetchone() == (False, True)
    finally:
        connection.close()


def test_the_rollback_gives_back_the_state_the_restore_replaced(cycle):
    rolled_back = cycle["rolled_back"]
    assert pg_digest.differences(cycle["changed"]["tables"], rolled_back["tables"]) == []
    assert rolled_back["media"] == cycle["changed"]["media"]


def test_preflight_with_the_inventory_alone_finds_no_error(cycle):
    # After the storage phase: before it, the checklist's storage problem is an error.
    assert "DJANGO_SETTINGS_MODULE" not in compose("exec", "-T", "web", "env").stdout
    proc = succeeded(playbook("preflight.yml"))
    assert "ERROR" not in proc.stdout
    assert (
        "Django settings lims_site.settings (from /srv/lims/src/manage.py (its"
        " os.environ.setdefault))" in proc.stdout
    )
    assert (
        "log in as user lims_owner to database lims over the db container's local socket"
        in proc.stdout
    )
    assert "with the password from the application's settings" in proc.stdout
    # The storage phase set BACKUP_DIR, which this application does not read.
    assert "BACKUP_DIR is /srv/lims/backups in the backend's environment" in proc.stdout
    assert "answers the application's login on the published port 127.0.0.1:55432" in proc.stdout


def test_preflight_with_a_wrong_password_in_the_settings_says_so_and_leaks_nothing(cycle):
    wrong = "wrong-" + secrets.token_hex(12)
    path = "/srv/lims/src/lims_site/settings_wrong_password.py"
    text = (
        "from lims_site.settings import *  # noqa: F403\n"
        f'DATABASES["default"]["PASSWORD"] = "{wrong}"  # noqa: F405\n'
    )
    compose("exec", "-T", "-u", "0", "web", "sh", "-c", 'cat > "$0"', path, input=text)
    try:
        proc = playbook(
            "preflight.yml", "edms_django_settings_module=lims_site.settings_wrong_password"
        )
    finally:
        compose("exec", "-T", "-u", "0", "web", "rm", "-f", path)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0, said[-3000:]
    assert 'password authentication failed for user "lims_owner"' in said
    assert "ERROR database_login" in said
    assert wrong not in said
    assert environment()["LIMS_DB_PASSWORD"] not in said
