# Private to the edms.backup collection: no compatibility promise to anyone else.
"""How the application logs in to its database, read from its own settings.

Entry point main: request {"settings"} (argv[1], see setup.py); prints one
JSON answer: {"vendor", "name", "user", "password", "port", "host",
"options", "unsupported", "server"} of the default database as Django's
connection has them (OPTIONS merged the way the PostgreSQL backend does) and
the server it reaches (SERVER_SQL), or {"error"}. The host hands them to the PostgreSQL
programs in the db container in their exec environment (PGUSER, PGPASSWORD,
PGDATABASE, PGPORT), never on a command line; the password is never shown.
"""

from ansible_collections.edms.backup.plugins.module_utils._backend.setup import answer, setup


def login(settings_dict):
    """The parts of a DATABASES entry the PostgreSQL programs need."""
    options = settings_dict.get("OPTIONS") or {}
    found = {
        "name": settings_dict.get("NAME") or options.get("dbname") or "",
        "user": settings_dict.get("USER") or options.get("user") or "",
        "password": settings_dict.get("PASSWORD") or options.get("password") or "",
        "host": settings_dict.get("HOST") or options.get("host") or "",
        "port": str(settings_dict.get("PORT") or options.get("port") or ""),
    }
    # Server options (-c search_path=...) go to the programs as PGOPTIONS.
    found["options"] = str(options.get("options") or "")
    # A service file or a passfile lives in the backend container, where the
    # db container's programs cannot read it; a role assumed after login
    # would own what pg_restore makes.
    found["unsupported"] = sorted(
        key for key in ("service", "passfile", "assume_role") if options.get(key)
    )
    return found


# Which server and database a connection reached: the server's start time (as
# a number, whatever the session's time zone) and the database's name. The
# host compares psql's answer in the db container with the application's.
SERVER_SQL = "SELECT extract(epoch FROM pg_postmaster_start_time())::text, current_database()"


def main():
    setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        answer(
            {
                "error": "the application's default database is %s, not PostgreSQL"
                % connection.vendor
            }
        )
        return
    found = login(connection.settings_dict)
    found["vendor"] = connection.vendor
    try:
        with connection.cursor() as cursor:
            cursor.execute(SERVER_SQL)
            found["server"] = list(cursor.fetchone())
    except Exception as exc:
        found["server"] = None
        found["server_error"] = "%s: %s" % (type(exc).__name__, exc)
    answer(found)
