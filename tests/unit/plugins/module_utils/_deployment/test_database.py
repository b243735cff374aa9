"""How the db container's PostgreSQL programs log in (_deployment/database.py)
and what the backend reads for it (_backend/connection.py): the pure parts."""

import pytest
from ansible_collections.edms.backup.plugins.module_utils._backend.connection import login
from ansible_collections.edms.backup.plugins.module_utils._deployment.database import (
    LoginError,
    candidates,
    check_name,
    describe_way,
    hide_answer,
    program,
    psql_argv,
)


def test_the_local_socket_is_tried_first_then_loopback_each_on_the_apps_port_then_the_default():
    assert candidates("5432") == [("", "5432"), ("", ""), ("127.0.0.1", "5432"), ("127.0.0.1", "")]
    assert candidates("") == [("", ""), ("127.0.0.1", "")]


def test_psql_never_prompts_and_takes_no_credentials_on_its_command_line():
    argv = psql_argv("SELECT 1", "postgres")
    assert argv[:2] == ["psql", "-X"]
    assert "-w" in argv
    assert argv[-2:] == ["-c", "SELECT 1"]
    assert not any(flag in argv for flag in ("-U", "-W", "--password", "-h"))
    assert "-d" not in psql_argv("SELECT 1")


def test_the_way_is_described_without_anything_secret():
    assert describe_way("", "") == "the db container's local socket"
    assert describe_way("127.0.0.1", "5432") == "127.0.0.1 in the db container, port 5432"


def test_the_login_is_read_from_the_settings_then_their_options():
    settings = {
        "NAME": "lims",
        "USER": "",
        "PASSWORD": "",
        "HOST": "pg",
        "PORT": 5432,
        "OPTIONS": {"user": "lims_app", "password": "s3cret", "sslmode": "disable"},
    }
    assert login(settings) == {
        "name": "lims",
        "user": "lims_app",
        "password": "s3cret",
        "host": "pg",
        "port": "5432",
        "options": "",
        "unsupported": [],
    }


def test_a_service_file_a_passfile_or_an_assumed_role_is_named_as_unsupported():
    options = {"service": "lims", "passfile": "/run/pgpass", "assume_role": "owner"}
    found = login({"NAME": "", "OPTIONS": options})
    assert found["unsupported"] == ["assume_role", "passfile", "service"]


def test_server_options_are_kept_for_pgoptions():
    found = login({"NAME": "lims", "OPTIONS": {"options": "-c search_path=lab,public"}})
    assert found["options"] == "-c search_path=lab,public"


@pytest.mark.parametrize(
    "value",
    [
        "host=elsewhere dbname=x",
        "postgresql://elsewhere/x",
        "POSTGRES://elsewhere/x",
        "a\nb",
        "x" * 64,
    ],
)
def test_a_name_that_is_not_a_plain_name_is_refused(value):
    with pytest.raises(LoginError, match="not a plain PostgreSQL name"):
        check_name("name", value)


@pytest.mark.parametrize("value", ["", None, 7])
def test_a_missing_name_is_named_as_missing(value):
    with pytest.raises(LoginError, match="settings give no name"):
        check_name("name", value)


def test_plain_names_pass_as_they_are():
    for value in ("lims", "Lab DB", "ZÜR", "x" * 63, "o'brien"):
        assert check_name("name", value) == value


def test_every_program_runs_without_the_containers_own_service_and_passfile():
    assert program(["pg_dump", "-Fc"]) == [
        "env",
        "-u",
        "PGSERVICE",
        "-u",
        "PGSERVICEFILE",
        "-u",
        "PGPASSFILE",
        "pg_dump",
        "-Fc",
    ]


def test_a_failed_settings_read_does_not_show_what_may_be_its_answer():
    assert "not shown" in hide_answer('{"password": "s3cret"}')
    assert hide_answer("Traceback: ImportError") == "Traceback: ImportError"
