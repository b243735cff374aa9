from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """EDMS account; keeps Django's UserManager, so the natural key is the username."""

    department = models.CharField(max_length=100, blank=True)
    employee_id = models.CharField(max_length=32, unique=True, null=True, blank=True)

    def __str__(self):
        return self.username
