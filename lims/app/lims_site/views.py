"""The health check the compose file's web service polls."""

import logging

from django.db import DatabaseError, connection
from django.http import JsonResponse

log = logging.getLogger("lims.healthz")


def healthz(request):
    """200 with {"ok": true} once the database answers a query, else 503."""
    if request.method not in ("GET", "HEAD"):
        return JsonResponse({"ok": False, "error": "GET only"}, status=405)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            database = cursor.fetchone()[0]
    except DatabaseError as exc:
        log.warning("healthz: the database does not answer: %s", exc)
        return JsonResponse({"ok": False}, status=503)
    return JsonResponse({"ok": True, "database": database})
