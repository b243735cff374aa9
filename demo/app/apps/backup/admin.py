from django.contrib import admin

from apps.backup.models import BackupConfiguration, BackupJob, RestoreJob


@admin.register(BackupConfiguration)
class BackupConfigurationAdmin(admin.ModelAdmin):
    list_display = ("name", "backup_type", "include_files", "is_active", "created_at")
    raw_id_fields = ("created_by",)


@admin.register(BackupJob)
class BackupJobAdmin(admin.ModelAdmin):
    list_display = ("id", "configuration", "status", "size_bytes", "started_at", "completed_at")
    list_filter = ("status",)
    raw_id_fields = ("created_by",)


@admin.register(RestoreJob)
class RestoreJobAdmin(admin.ModelAdmin):
    list_display = ("id", "backup_job", "status", "started_at", "completed_at")
    list_filter = ("status",)
    raw_id_fields = ("backup_job", "requested_by")
