"""The EDMS's own backup feature, as the operators' checklist calls it (Step 4):

    job = BackupService().execute_backup(config, admin)
    print(job.backup_path)

It writes ``<BACKUP_DIR>/<YYYYMMDD_HHMMSS>.zip`` (UTC) holding
``database_backup.json`` (Django's own serializer, natural keys),
``metadata.json`` and, when the configuration includes files, ``media/``.
With ``BACKUP_DIR`` unset it falls back to ``/app/backups`` inside the
container (checklist, known issue 1).

This is the reference application, and the service keeps the weaknesses such
a feature plausibly has, the ones the checklist's troubleshooting section is
about, so that the edms.backup collection has something to find:

- rows are read through each model's default manager, so rows it hides
  (soft-deleted documents) are not in the backup;
- ``use_natural_primary_keys``: objects with a natural key carry no primary
  key, so a load gives them new ones (UUIDs and user ids change);
- Django's JSON encoder cuts times to milliseconds;
- the admin's log, content types, permissions and sessions are left out;
- media only when the configuration asks for files (known issue 4);
- the counts in metadata.json are taken apart from the dump, and the ZIP is
  written in place, so a failure leaves a partial file behind.
"""

import os
import zipfile
from datetime import UTC

import django
from django.apps import apps
from django.conf import settings
from django.core import serializers
from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils import timezone

from apps.backup.models import BackupConfiguration, BackupJob, JobStatus

DEFAULT_BACKUP_DIR = "/app/backups"
EXCLUDED = ("contenttypes", "sessions", "admin.logentry", "auth.permission")


class BackupError(Exception):
    """What the service says when a backup cannot be made."""


def _excluded(model):
    meta = model._meta
    return meta.app_label in EXCLUDED or meta.label_lower in EXCLUDED


class BackupService:
    def backup_dir(self):
        return getattr(settings, "BACKUP_DIR", None) or DEFAULT_BACKUP_DIR

    def validate(self, config, user):
        if user is None:
            raise BackupError("no user to run the backup as (is there a superuser?)")
        if not user.is_active or not user.is_staff:
            raise BackupError(f"user {user.get_username()} may not run backups")
        if not config.is_active:
            raise BackupError(f"backup configuration '{config.name}' is not active")
        if config.backup_type not in BackupConfiguration.BackupType.values:
            raise BackupError(
                f"backup configuration '{config.name}' has an unknown backup type"
                f" {config.backup_type!r}"
            )
        if config.backup_type == BackupConfiguration.BackupType.FILES and not config.include_files:
            raise BackupError(
                f"backup configuration '{config.name}' backs up files but excludes them"
            )

    def includes_database(self, config):
        return config.backup_type != BackupConfiguration.BackupType.FILES

    def includes_files(self, config):
        return (
            config.include_files and config.backup_type != BackupConfiguration.BackupType.DATABASE
        )

    def models(self):
        chosen = [
            model
            for model in apps.get_models()
            if model._meta.managed and not model._meta.proxy and not _excluded(model)
        ]
        app_list = {}
        for model in chosen:
            app_list.setdefault(model._meta.app_config, []).append(model)
        return serializers.sort_dependencies(app_list.items(), allow_cycles=True)

    def objects(self, models):
        for model in models:
            yield from model._default_manager.order_by(model._meta.pk.name).iterator()

    def media_files(self):
        root = str(settings.MEDIA_ROOT)
        for folder, _dirs, files in os.walk(root):
            for name in sorted(files):
                path = os.path.join(folder, name)
                yield path, os.path.relpath(path, root)

    def execute_backup(self, config, user):
        self.validate(config, user)
        job = BackupJob.objects.create(
            configuration=config, created_by=user, status=JobStatus.RUNNING
        )
        stamp = job.started_at.astimezone(UTC).strftime("%Y%m%d_%H%M%S")
        path = os.path.join(self.backup_dir(), f"{stamp}.zip")
        try:
            os.makedirs(self.backup_dir(), exist_ok=True)
            models = self.models() if self.includes_database(config) else []
            counts = {m._meta.label_lower: m._default_manager.count() for m in models}
            media = 0
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
                if models:
                    with archive.open("database_backup.json", "w") as fixture:
                        serializers.serialize(
                            "json",
                            self.objects(models),
                            stream=_Text(fixture),
                            indent=2,
                            use_natural_foreign_keys=True,
                            use_natural_primary_keys=True,
                        )
                if self.includes_files(config):
                    for source, name in self.media_files():
                        archive.write(source, "media/" + name)
                        media += 1
                metadata = {
                    "backup_id": str(job.id),
                    "backup_name": stamp,
                    "created_at": job.started_at.isoformat(),
                    "created_by": user.get_username(),
                    "configuration": config.name,
                    "backup_type": config.backup_type,
                    "include_files": self.includes_files(config),
                    "django_version": django.get_version(),
                    "database": {
                        "vendor": connection.vendor,
                        "name": connection.settings_dict["NAME"],
                    },
                    "counts": counts,
                    "media_files": media,
                    "media_storage": default_storage.__class__.__name__,
                }
                archive.writestr("metadata.json", _json(metadata))
        except Exception as exc:
            job.status = JobStatus.FAILED
            job.completed_at = timezone.now()
            job.save(update_fields=["status", "completed_at"])
            raise BackupError(f"{type(exc).__name__}: {exc}") from exc
        job.status = JobStatus.COMPLETED
        job.backup_path = path
        job.size_bytes = os.path.getsize(path)
        job.completed_at = timezone.now()
        job.save(update_fields=["status", "backup_path", "size_bytes", "completed_at"])
        return job


class _Text:
    """A text stream over a ZIP member opened for writing."""

    def __init__(self, binary):
        self.binary = binary

    def write(self, text):
        self.binary.write(text.encode("utf-8"))


def _json(value):
    import json

    return json.dumps(value, cls=DjangoJSONEncoder, indent=2)
