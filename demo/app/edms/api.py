"""The EDMS's backup API (the checklist: "Via Django admin ... Or via API").

POST /api/backups/ with HTTP Basic authentication of a staff user and an
optional JSON body {"configuration": "<name>"} runs that backup
configuration (the first when none is named) through BackupService, as the
admin's "run now" would: 201 {"job", "status", "backup_path"}; 400
{"error": the service's message}; 401 when the credentials do not log in.
"""

import base64
import binascii
import json

from apps.backup.models import BackupConfiguration
from apps.backup.services import BackupError, BackupService
from django.contrib.auth import authenticate
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


def _basic_user(request):
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _space, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, _colon, password = base64.b64decode(encoded).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return authenticate(request, username=username, password=password)


@csrf_exempt
@require_POST
def run_backup(request):
    user = _basic_user(request)
    if user is None:
        response = JsonResponse({"error": "authentication failed"}, status=401)
        response["WWW-Authenticate"] = 'Basic realm="edms"'
        return response
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": "the request body is not JSON"}, status=400)
    name = body.get("configuration") if isinstance(body, dict) else None
    if name:
        config = BackupConfiguration.objects.filter(name=name).first()
        if config is None:
            return JsonResponse({"error": f"no backup configuration named {name!r}"}, status=404)
    else:
        config = BackupConfiguration.objects.order_by("pk").first()
        if config is None:
            return JsonResponse({"error": "there is no backup configuration"}, status=404)
    try:
        job = BackupService().execute_backup(config, user)
    except BackupError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(
        {"job": str(job.pk), "status": job.status, "backup_path": job.backup_path}, status=201
    )
