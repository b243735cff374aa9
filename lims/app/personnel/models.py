"""Laboratories, their analysts (the custom user model) and instruments."""

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models


class LaboratoryManager(models.Manager):
    def get_by_natural_key(self, code):
        return self.get(code=code)


class Laboratory(models.Model):
    """Natural key equal to the primary key: a string code."""

    code = models.CharField(primary_key=True, max_length=16)
    name = models.CharField(max_length=200)
    city = models.CharField(max_length=100)
    founded = models.DateField()
    # Symmetrical m2m to self: a partnership is one row each way.
    partners = models.ManyToManyField("self", symmetrical=True, blank=True)

    objects = LaboratoryManager()

    class Meta:
        ordering = ("code",)
        verbose_name_plural = "laboratories"

    def __str__(self):
        return f"{self.code} {self.name}"

    def natural_key(self):
        return (self.code,)


class AnalystManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **fields):
        if not email:
            raise ValueError("an analyst needs an email address")
        analyst = self.model(email=self.normalize_email(email), **fields)
        analyst.set_password(password)
        analyst.save(using=self._db)
        return analyst

    def create_superuser(self, email, password=None, **fields):
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **fields)


class Analyst(AbstractBaseUser, PermissionsMixin):
    """AUTH_USER_MODEL: email is the USERNAME_FIELD and so the natural key."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=120)
    laboratory = models.ForeignKey(
        Laboratory, on_delete=models.PROTECT, null=True, blank=True, related_name="analysts"
    )
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    joined_at = models.DateTimeField()

    objects = AnalystManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ("full_name",)

    class Meta:
        ordering = ("email",)

    def __str__(self):
        return self.full_name


class InstrumentManager(models.Manager):
    def get_by_natural_key(self, vendor, serial):
        return self.get(vendor=vendor, serial=serial)


class Instrument(models.Model):
    """Composite natural key (vendor, serial) under a UniqueConstraint."""

    vendor = models.CharField(max_length=60)
    serial = models.CharField(max_length=60)
    model_name = models.CharField(max_length=120)
    laboratory = models.ForeignKey(Laboratory, on_delete=models.PROTECT, related_name="instruments")
    firmware = models.BinaryField()
    calibration_interval = models.DurationField()

    objects = InstrumentManager()

    class Meta:
        ordering = ("vendor", "serial")
        constraints = (
            models.UniqueConstraint(fields=["vendor", "serial"], name="instrument_vendor_serial"),
        )

    def __str__(self):
        return f"{self.vendor} {self.model_name} #{self.serial}"

    def natural_key(self):
        return (self.vendor, self.serial)
