# Private to the edms.backup collection: no compatibility promise to anyone else.
"""How the application logs in to its database, read from its own settings.

Entry point main: request {"settings"} (argv[1], see setup.py); prints one
JSON answer: {"vendor", "name", "user", "password", "port", "host"} of the
default database as Django's connection has them (OPTIONS merged the way the
PostgreSQL backend does), or {"error"}. The host hands them to the PostgreSQL
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
    # A service file or a passfile lives in the backend container, where the
    # db container's programs cannot read it.
    found["unsupported"] = sorted(key for key in ("service", "passfile") if options.get(key))
    return found


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
    answer(found)
