# Private to the edms.backup collection: no compatibility promise to anyone else.
"""What preflight sees from inside the backend container.

Entry point main: request {"settings", "models", "backup_dir", "media_dir"}
(argv[1]); prints one JSON answer: the settings and environment that matter
to a backup, the container's user, the backup and media directories as the
container sees them, its clock, the database (reachable, version, time zone,
clock, name) and, when it is reachable, the counts (counts.count_models).
"""

import datetime
import os

from ansible_collections.edms.backup.plugins.module_utils._backend.counts import count_models
from ansible_collections.edms.backup.plugins.module_utils._backend.setup import answer, setup


def directory(path):
    return {
        "path": path,
        "exists": os.path.isdir(path),
        "writable": os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK),
    }


def database():
    """The database as the application reaches it, or why it cannot."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT version(), current_setting('TimeZone'), now(), current_database()"
            )
            version, db_zone, db_now, db_name = cursor.fetchone()
    except Exception as exc:
        return {"reachable": False, "error": "%s: %s" % (type(exc).__name__, exc)}
    return {
        "reachable": True,
        "version": version,
        "timezone": db_zone,
        "now": db_now.isoformat(),
        "name": db_name,
    }


def main():
    request = setup()
    from django.conf import settings

    found = {
        "settings": {
            "BACKUP_DIR": getattr(settings, "BACKUP_DIR", None),
            "MEDIA_ROOT": str(getattr(settings, "MEDIA_ROOT", "") or ""),
            "TIME_ZONE": settings.TIME_ZONE,
            "USE_TZ": settings.USE_TZ,
            "module": os.environ.get("DJANGO_SETTINGS_MODULE"),
            "source": request["settings_source"],
        },
        "environment": {"BACKUP_DIR": os.environ.get("BACKUP_DIR"), "TZ": os.environ.get("TZ")},
        "user": {"uid": os.getuid(), "gid": os.getgid()},
        "backup_dir": directory(request["backup_dir"]),
        "media_dir": directory(request["media_dir"]),
        "now": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "database": database(),
    }
    if found["database"]["reachable"]:
        found.update(count_models(request["models"]))
    answer(found)
