import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class JobStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    RUNNING = "RUNNING", "Running"
    COMPLETED = "COMPLETED", "Completed"
    FAILED = "FAILED", "Failed"


class BackupConfigurationManager(models.Manager):
    def get_by_natural_key(self, name):
        return self.get(name=name)


class BackupConfiguration(models.Model):
    """Identified by its name in fixtures (natural key) on top of a UUID key.

    A UUID primary key with a natural key is the case where
    ``dumpdata --natural-primary`` drops the UUID and a load makes a new one.
    """

    class BackupType(models.TextChoices):
        DATABASE = "DATABASE", "Database only"
        FILES = "FILES", "Files only"
        FULL = "FULL", "Database and files"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    backup_type = models.CharField(max_length=16, choices=BackupType.choices)
    include_files = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="backup_configurations"
    )
    created_at = models.DateTimeField(default=timezone.now)
    is_active = models.BooleanField(default=True)

    objects = BackupConfigurationManager()

    def __str__(self):
        return self.name

    def natural_key(self):
        return (self.name,)


class BackupJob(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    configuration = models.ForeignKey(
        BackupConfiguration, on_delete=models.PROTECT, related_name="jobs"
    )
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    backup_path = models.CharField(max_length=500, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="backup_jobs"
    )

    def __str__(self):
        return f"{self.configuration_id} @ {self.started_at:%Y%m%d_%H%M%S} ({self.status})"


class RestoreJob(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    backup_job = models.ForeignKey(
        BackupJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="restores"
    )
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="restore_jobs"
    )
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)

    def __str__(self):
        return f"Restore {self.pk} ({self.status})"
