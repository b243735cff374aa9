from django.contrib import admin
from django.urls import path

from edms.api import run_backup
from edms.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/backups/", run_backup, name="api-backups"),
    path("admin/", admin.site.urls),
]
