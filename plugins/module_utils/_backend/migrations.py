# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The schema of a database, read or made inside the backend container.

Entry points (request in argv[1], see setup.py; one JSON answer printed):

- applied_main: {"migrations": {app: [names]}}, the migrations applied;
- migrate_main: migrates the database; {"database": its name};
- database_name_main: {"database": the name of the database the application reads}.
"""

from ansible_collections.edms.backup.plugins.module_utils._backend.setup import answer, setup


def applied_main():
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    setup()
    applied = {}
    for app_label, name in sorted(MigrationRecorder(connection).applied_migrations()):
        applied.setdefault(app_label, []).append(name)
    answer({"migrations": applied})


def migrate_main():
    from django.core.management import call_command
    from django.db import connection

    setup()
    call_command("migrate", interactive=False, verbosity=0)
    answer({"database": connection.settings_dict["NAME"]})


def database_name_main():
    from django.db import connection

    setup()
    answer({"database": connection.settings_dict["NAME"]})
