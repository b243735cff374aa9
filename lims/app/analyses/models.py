"""Assays (multi-table inheritance), orders, their lines and the results."""

from django.conf import settings
from django.db import models
from django.db.models import F
from personnel.models import Instrument, Laboratory
from specimens.models import Specimen


class Assay(models.Model):
    """The parent of a multi-table inheritance; plain assays exist too."""

    code = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=120)
    incubation = models.DurationField()
    instruments = models.ManyToManyField(Instrument, blank=True, related_name="assays")

    class Meta:
        ordering = ("code",)

    def __str__(self):
        return self.code


class ElisaAssay(Assay):
    """The child: its own table, keyed by assay_ptr."""

    antibody = models.CharField(max_length=120)
    dilution = models.DecimalField(max_digits=10, decimal_places=4)


class Order(models.Model):
    """A table and a column named by reserved words ("order", "user")."""

    number = models.CharField(max_length=24, unique=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, db_column="user", related_name="orders"
    )
    laboratory = models.ForeignKey(Laboratory, on_delete=models.PROTECT, related_name="orders")
    specimens = models.ManyToManyField(Specimen, blank=True, related_name="orders")
    assays = models.ManyToManyField(Assay, through="OrderLine", related_name="orders")
    # Defaults kept by the database (db_default), not by Django.
    status = models.CharField(max_length=12, db_default="open")
    priority = models.PositiveSmallIntegerField(db_default=3)
    placed_at = models.DateTimeField()

    class Meta:
        db_table = "order"
        ordering = ("number",)

    def __str__(self):
        return self.number


class UrgentOrderManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(priority=1)


class UrgentOrder(Order):
    """A proxy: no table of its own."""

    objects = UrgentOrderManager()

    class Meta:
        proxy = True


class OrderLine(models.Model):
    """The through model of Order.assays, with fields of its own."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    assay = models.ForeignKey(Assay, on_delete=models.PROTECT, related_name="lines")
    replicates = models.PositiveSmallIntegerField()
    volume_ul = models.PositiveIntegerField()
    total_volume_ul = models.GeneratedField(
        expression=F("replicates") * F("volume_ul"),
        output_field=models.BigIntegerField(),
        db_persist=True,
    )
    note = models.TextField(blank=True)

    class Meta:
        constraints = (models.UniqueConstraint(fields=["order", "assay"], name="orderline_once"),)

    def __str__(self):
        return f"{self.order_id}/{self.assay_id}"


class Measurement(models.Model):
    order_line = models.ForeignKey(OrderLine, on_delete=models.CASCADE, related_name="measurements")
    specimen = models.ForeignKey(Specimen, on_delete=models.PROTECT, related_name="measurements")
    instrument = models.ForeignKey(
        Instrument, on_delete=models.PROTECT, null=True, blank=True, related_name="measurements"
    )
    value = models.DecimalField(max_digits=20, decimal_places=6)
    elapsed = models.DurationField()
    data = models.JSONField()
    raw = models.BinaryField()
    measured_at = models.DateTimeField()

    def __str__(self):
        return f"{self.value} ({self.specimen_id})"


class ArchivedResult(models.Model):
    """A mixed-case table name, which SQL must quote."""

    specimen_barcode = models.CharField(max_length=32)
    assay_code = models.CharField(max_length=20)
    value = models.DecimalField(max_digits=20, decimal_places=6)
    archived_at = models.DateTimeField()

    class Meta:
        db_table = "LabResult_Archive"

    def __str__(self):
        return f"{self.specimen_barcode} {self.assay_code}"


class LaboratorySummary(models.Model):
    """Unmanaged: a view created by migration 0002 (RunSQL), never dumped or loaded."""

    laboratory = models.OneToOneField(
        Laboratory,
        on_delete=models.DO_NOTHING,
        primary_key=True,
        db_column="laboratory_code",
        related_name="+",
    )
    specimen_count = models.BigIntegerField()
    order_count = models.BigIntegerField()
    last_measured_at = models.DateTimeField(null=True)

    class Meta:
        managed = False
        db_table = "lims_laboratory_summary"

    def __str__(self):
        return f"{self.laboratory_id}: {self.specimen_count} specimens"
