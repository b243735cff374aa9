from django.contrib import admin

from apps.audit.models import AuditTrail


@admin.register(AuditTrail)
class AuditTrailAdmin(admin.ModelAdmin):
    list_display = ("timestamp", "action", "user", "content_type", "object_id", "object_repr")
    list_filter = ("action", "content_type")
    search_fields = ("object_repr", "object_id")
    raw_id_fields = ("user",)
    date_hierarchy = "timestamp"
