from django.contrib import admin

from apps.workflows.models import Workflow, WorkflowStep


class WorkflowStepInline(admin.TabularInline):
    model = WorkflowStep
    extra = 0
    raw_id_fields = ("assignee",)


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "document", "initiated_by", "status", "due_date")
    list_filter = ("status",)
    search_fields = ("name",)
    raw_id_fields = ("document", "initiated_by", "participants")
    inlines = (WorkflowStepInline,)


@admin.register(WorkflowStep)
class WorkflowStepAdmin(admin.ModelAdmin):
    list_display = ("workflow", "order", "action", "assignee", "completed_at")
    list_filter = ("action",)
    raw_id_fields = ("workflow", "assignee")
