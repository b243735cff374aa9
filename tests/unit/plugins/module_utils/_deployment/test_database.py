"""How the db container's PostgreSQL programs log in (_deployment/database.py)
and what the backend reads for it (_backend/connection.py): the pure parts."""

from ansible_collections.edms.backup.plugins.module_utils._backend.connection import login
from ansible_collections.edms.backup.plugins.module_utils._deployment.database import (
    candidates,
    describe_way,
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
        "unsupported": [],
    }


def test_a_service_file_or_passfile_is_named_as_unsupported():
    found = login({"NAME": "", "OPTIONS": {"service": "lims", "passfile": "/run/pgpass"}})
    assert found["unsupported"] == ["passfile", "service"]
