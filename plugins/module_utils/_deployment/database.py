# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The PostgreSQL programs in the db container, logged in as the application.

pg_dump, pg_restore and psql run in the db container with the application's
own credentials: read inside the backend from Django's settings
(_backend/connection.py) and handed over in the exec environment (PGUSER,
PGPASSWORD, PGDATABASE, PGHOST, PGPORT), never in an argv, the result or an
error. Nothing assumes the server trusts local connections: the login is
tried over the container's local socket, then over 127.0.0.1, and the first
that works is used and reported, once the server and database it reached
are found to be the application's. The password is given to secret(): the
module's failure message masks it (_common.py hide_secrets).
"""

from __future__ import annotations

from ansible_collections.edms.backup.plugins.module_utils._backend import (
    connection as connection_program,
)
from ansible_collections.edms.backup.plugins.module_utils._backend.connection import SERVER_SQL
from ansible_collections.edms.backup.plugins.module_utils._common import secret
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    DjangoError,
    backend_command,
    parse_answer,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import ExecError

LOCAL_SOCKET = "the db container's local socket"
# Variables of the db container's own environment that would steer the
# programs elsewhere (a service, a password file): unset for every program.
INHERITED = ("PGSERVICE", "PGSERVICEFILE", "PGPASSFILE")
# A database or user name the backend answers must be a name: never a
# connection string (libpq reads a dbname with "=" or a URI prefix as one).
NAME_LIMIT = 63


class LoginError(DjangoError):
    """The db container's PostgreSQL programs cannot log in as the application."""


def hide_answer(said):
    """A failed settings read's output, unless it may be the answer itself."""
    return "(its output is not shown: it may hold the password)" if "{" in said else said


def check_name(kind, value):
    """value, when it is a plain PostgreSQL name; LoginError otherwise."""
    text = value if isinstance(value, str) else ""
    if not text:
        raise LoginError(
            f"the application's database settings give no {kind} (DATABASES['default']):"
            " the programs in the db container would log in as whatever its defaults are;"
            f" give the {kind} in the settings"
        )
    if (
        not text
        or len(text.encode("utf-8")) > NAME_LIMIT
        or "=" in text
        or text.lower().startswith(("postgres://", "postgresql://"))
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in text)
    ):
        raise LoginError(
            f"the application's database {kind} from its settings is not a plain"
            f" PostgreSQL name (at most {NAME_LIMIT} bytes, no '=', no control characters,"
            " not a connection URI)"
        )
    return text


def program(argv):
    """argv run without the db container's own PGSERVICE, PGPASSFILE..."""
    prefix = ["env"]
    for name in INHERITED:
        prefix += ["-u", name]
    return [*prefix, *argv]


def psql_argv(sql, database=None):
    """psql that runs one statement and prints its rows unaligned, stops on
    the first error and never asks for a password."""
    argv = ["psql", "-X", "-w", "-v", "ON_ERROR_STOP=1", "-qAt"]
    if database:
        argv += ["-d", database]
    return [*argv, "-c", sql]


def candidates(port):
    """(PGHOST, PGPORT) to try, in order: the local socket, then 127.0.0.1,
    each on the application's port, then on the server's default."""
    ports = [port, ""] if port else [""]
    return [(host, each) for host in ("", "127.0.0.1") for each in ports]


def describe_way(host, port):
    where = LOCAL_SOCKET if not host else f"{host} in the db container"
    return where + (f", port {port}" if port else "")


class DatabaseLogin:
    """The application's login, for programs run in the db container."""

    def __init__(self, containers, backend_id, db_id, python, settings):
        self.containers = containers
        self.backend_id = backend_id
        self.db_id = db_id
        self.python = python
        self.settings = settings
        self._credentials = None
        self.way = None  # (PGHOST, PGPORT) that worked

    def credentials(self):
        """The application's {"name", "user", "password", "host", "port"},
        read once from its settings in the backend."""
        if self._credentials is None:
            argv = backend_command(self.python, connection_program, {"settings": self.settings})
            answer = parse_answer(
                self.containers.exec(
                    self.backend_id,
                    argv,
                    what="the application's database settings",
                    clean=hide_answer,
                ).stdout
            )
            if "error" in answer:
                raise LoginError(str(answer["error"]))
            if not isinstance(answer.get("password"), str):
                answer["password"] = ""
            secret(answer["password"])
            answer["user"] = check_name("user", answer.get("user"))
            answer["name"] = check_name("name", answer.get("name"))
            answer["port"] = str(answer.get("port") or "")
            answer["options"] = str(answer.get("options") or "")
            if answer.get("unsupported"):
                raise LoginError(
                    "the application's database OPTIONS use {}, which the PostgreSQL programs"
                    " in the db container cannot follow (a service or password file is in"
                    " the backend container; a role assumed after login would not own what"
                    " pg_restore makes): give NAME, USER and PASSWORD in DATABASES".format(
                        " and ".join(str(key) for key in answer["unsupported"])
                    )
                )
            self._credentials = answer
        return self._credentials

    def environment(self, way=None):
        """The exec environment of a program that logs in as the application."""
        found = self.credentials()
        host, port = way or self.way or ("", "")
        env = {
            "PGUSER": found["user"],
            "PGDATABASE": found["name"],
            "PGHOST": host,
            "PGPORT": port,
            "PGCONNECT_TIMEOUT": "10",
            "PGOPTIONS": found["options"],
        }
        if found["password"]:
            env["PGPASSWORD"] = found["password"]
        return env

    def connect(self):
        """Find the way the login works (see candidates); its description.
        Raises LoginError saying why each way failed."""
        if self.way is not None:
            return self.describe()
        found = self.credentials()
        port = found["port"] if found["port"].isdigit() else ""
        failures = []
        for way in candidates(port):
            try:
                answer = self.containers.exec(
                    self.db_id,
                    program(psql_argv(SERVER_SQL)),
                    environment=self.environment(way),
                    what="psql",
                )
            except ExecError as exc:
                failures.append(f"over {describe_way(*way)}: {exc}")
                continue
            self.check_server(answer.stdout.decode("utf-8", "replace").strip())
            self.way = way
            return self.describe()
        raise LoginError(
            "the PostgreSQL programs in the db container cannot log in as the"
            " application (user {}, database {}, with {}): {}. Check the application's"
            " DATABASES settings and the server's pg_hba.conf".format(
                found["user"] or "(none)",
                found["name"] or "(none)",
                self.password_said(),
                "; ".join(failures),
            )
        )

    def check_server(self, said):
        """The db service's server and database must be the application's:
        else pg_dump, pg_restore and the counts would work on another."""
        found = self.credentials()
        theirs = found.get("server")
        if theirs is None:
            raise LoginError(
                "the application cannot reach its database, so the db service cannot be"
                " told to be its server: {}".format(found.get("server_error", "unknown error"))
            )
        if said != "|".join(str(part) for part in theirs):
            raise LoginError(
                "the db service's PostgreSQL is not the server and database the application"
                " uses (its settings name host {}): pg_dump and pg_restore there would not"
                " work on the application's data; set edms_db_service to the service that"
                " runs the application's database".format(found.get("host") or "(none)")
            )

    def password_said(self):
        if self.credentials()["password"]:
            return "the password from the application's settings"
        return "no password (the application's settings give none)"

    def describe(self):
        found = self.credentials()
        return "as user {} to database {} over {}, with {}".format(
            found["user"], found["name"], describe_way(*self.way), self.password_said()
        )

    def run(self, argv, what, clean=None):
        """argv in the db container, logged in; its ExecResult."""
        self.connect()
        return self.containers.exec(
            self.db_id, program(argv), environment=self.environment(), what=what, clean=clean
        )

    def stream(self, argv, what):
        """argv in the db container, logged in, its stdout as a stream (ExecStream)."""
        self.connect()
        return self.containers.exec_stream(
            self.db_id, program(argv), environment=self.environment(), what=what
        )

    def psql(self, sql, database=None):
        """The rows one statement prints, unaligned, as text."""
        answer = self.run(psql_argv(sql, database), what="psql")
        return answer.stdout.decode("utf-8", "replace").strip()
