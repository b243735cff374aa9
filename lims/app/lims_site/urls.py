from django.contrib import admin
from django.urls import path

from lims_site.views import healthz

urlpatterns = [
    path("healthz", healthz),
    path("admin/", admin.site.urls),
]
