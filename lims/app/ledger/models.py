"""Generic relations: an audit ledger and free annotations on any object."""

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models


class AuditEntry(models.Model):
    """One row per save of a LIMS object, written by ledger.receivers."""

    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT)
    object_pk = models.CharField(max_length=64)
    target = GenericForeignKey("content_type", "object_pk")
    action = models.CharField(max_length=8)
    raw = models.BooleanField(default=False)
    recorded_at = models.DateTimeField()
    summary = models.JSONField(default=dict)

    class Meta:
        verbose_name_plural = "audit entries"
        indexes = (models.Index(fields=["content_type", "object_pk"]),)

    def __str__(self):
        return f"{self.action} {self.content_type_id}:{self.object_pk}"


class Annotation(models.Model):
    """A generic foreign key to objects keyed by integers, UUIDs and strings."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.CharField(max_length=64)
    subject = GenericForeignKey("content_type", "object_id")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    text = models.TextField()
    written_at = models.DateTimeField()

    def __str__(self):
        return self.text[:40]
