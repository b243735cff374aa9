import uuid

from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.db import models
from django.utils import timezone


class DocumentTypeManager(models.Manager):
    def get_by_natural_key(self, code):
        return self.get(code=code)


class DocumentType(models.Model):
    code = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=100)

    objects = DocumentTypeManager()

    class Meta:
        ordering = ("code",)

    def __str__(self):
        return f"{self.code} - {self.name}"

    def natural_key(self):
        return (self.code,)


class ActiveDocumentManager(models.Manager):
    """Default manager: hides soft-deleted documents."""

    def get_queryset(self):
        return super().get_queryset().filter(is_deleted=False)


class Document(models.Model):
    class Status(models.TextChoices):
        DRAFT = "DRAFT", "Draft"
        REVIEW = "REVIEW", "In review"
        APPROVED = "APPROVED", "Approved"
        EFFECTIVE = "EFFECTIVE", "Effective"
        OBSOLETE = "OBSOLETE", "Obsolete"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    document_number = models.CharField(max_length=32, unique=True)
    title = models.CharField(max_length=255)
    document_type = models.ForeignKey(
        DocumentType, on_delete=models.PROTECT, related_name="documents"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_documents"
    )
    file = models.FileField(upload_to="documents/%Y/%m/")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    # Plain defaults rather than auto_now/auto_now_add, so a restore keeps the stored values.
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    is_deleted = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)

    audit_entries = GenericRelation("audit.AuditTrail", related_query_name="document")

    # The first manager is the default one (used by dumpdata without --all and by
    # the admin unless overridden); it hides soft-deleted rows.
    objects = ActiveDocumentManager()
    all_objects = models.Manager()

    class Meta:
        ordering = ("document_number",)

    def __str__(self):
        return f"{self.document_number}: {self.title}"

    def soft_delete(self, when=None):
        when = when or timezone.now()
        self.is_deleted = True
        self.deleted_at = when
        self.updated_at = when
        self.save(update_fields=["is_deleted", "deleted_at", "updated_at"])


class DocumentVersion(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="versions")
    version_number = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="created_versions"
    )
    created_at = models.DateTimeField(default=timezone.now)
    change_summary = models.TextField()
    checksum = models.CharField(max_length=64)

    class Meta:
        unique_together = (("document", "version_number"),)

    def __str__(self):
        return f"{self.document_id} v{self.version_number}"
