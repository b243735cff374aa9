from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.db import models
from django.utils import timezone


class Workflow(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        IN_PROGRESS = "IN_PROGRESS", "In progress"
        COMPLETED = "COMPLETED", "Completed"
        CANCELLED = "CANCELLED", "Cancelled"

    name = models.CharField(max_length=255)
    document = models.ForeignKey(
        "documents.Document", on_delete=models.PROTECT, related_name="workflows"
    )
    initiated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="initiated_workflows"
    )
    participants = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="workflows")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    due_date = models.DateField(null=True, blank=True)

    audit_entries = GenericRelation("audit.AuditTrail", related_query_name="workflow")

    def __str__(self):
        return f"Workflow {self.pk}: {self.name}"


class WorkflowStep(models.Model):
    class Action(models.TextChoices):
        REVIEW = "REVIEW", "Review"
        APPROVE = "APPROVE", "Approve"
        SIGN = "SIGN", "Sign"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveIntegerField()
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assigned_steps"
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    completed_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)

    class Meta:
        unique_together = (("workflow", "order"),)

    def __str__(self):
        return f"Workflow {self.workflow_id} step {self.order} ({self.action})"
