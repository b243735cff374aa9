"""Specimens (UUID keys), where they are kept, their aliquots and files."""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from personnel.models import Laboratory


class FreezerManager(models.Manager):
    def get_by_natural_key(self, name, laboratory_code):
        return self.get(name=name, laboratory__code=laboratory_code)


class Freezer(models.Model):
    """Natural key that includes the laboratory's natural key."""

    name = models.CharField(max_length=60)
    laboratory = models.ForeignKey(Laboratory, on_delete=models.PROTECT, related_name="freezers")
    temperature_c = models.DecimalField(max_digits=5, decimal_places=1)

    objects = FreezerManager()

    class Meta:
        ordering = ("laboratory", "name")
        unique_together = (("name", "laboratory"),)

    def __str__(self):
        return f"{self.name} ({self.laboratory_id})"

    def natural_key(self):
        return (self.name, *self.laboratory.natural_key())

    natural_key.dependencies = ["personnel.laboratory"]  # noqa: RUF012


class CurrentSpecimenManager(models.Manager):
    """The default manager: archived specimens are hidden from it."""

    def get_queryset(self):
        return super().get_queryset().filter(archived=False)


class Specimen(models.Model):
    class Kind(models.TextChoices):
        BLOOD = "blood", "Blood"
        SERUM = "serum", "Serum"
        TISSUE = "tissue", "Tissue"
        SWAB = "swab", "Swab"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    barcode = models.CharField(max_length=32, unique=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    laboratory = models.ForeignKey(Laboratory, on_delete=models.PROTECT, related_name="specimens")
    freezer = models.ForeignKey(
        Freezer, on_delete=models.SET_NULL, null=True, blank=True, related_name="specimens"
    )
    collected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="collected_specimens"
    )
    handled_by = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="handled_specimens"
    )
    collected_at = models.DateTimeField()
    tags = ArrayField(models.CharField(max_length=60), default=list, blank=True)
    well_positions = ArrayField(models.IntegerField(), default=list, blank=True)
    archived = models.BooleanField(default=False)

    objects = CurrentSpecimenManager()
    everything = models.Manager()

    class Meta:
        ordering = ("barcode",)

    def __str__(self):
        return self.barcode


class Consent(models.Model):
    """A OneToOneField as the primary key."""

    specimen = models.OneToOneField(
        Specimen, on_delete=models.CASCADE, primary_key=True, related_name="consent"
    )
    signed_on = models.DateField()
    scope = models.JSONField(default=dict)

    def __str__(self):
        return f"consent for {self.specimen_id}"


class Aliquot(models.Model):
    """A self reference; the seed gives children lower ids than their parents."""

    specimen = models.ForeignKey(Specimen, on_delete=models.CASCADE, related_name="aliquots")
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children"
    )
    label = models.CharField(max_length=40)
    volume_ul = models.DecimalField(max_digits=8, decimal_places=2)

    def __str__(self):
        return self.label


def attachment_path(instance, filename):
    return f"specimens/{instance.specimen_id}/{filename}"


class Attachment(models.Model):
    """A FileField, and a ForeignKey to a unique field that is not the key."""

    specimen = models.ForeignKey(
        Specimen,
        to_field="barcode",
        db_column="specimen_barcode",
        on_delete=models.CASCADE,
        related_name="attachments",
    )
    title = models.CharField(max_length=200)
    file = models.FileField(upload_to=attachment_path, max_length=300)
    uploaded_at = models.DateTimeField()

    def __str__(self):
        return self.title
