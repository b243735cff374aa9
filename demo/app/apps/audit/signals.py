"""Audit entries for objects created through the ORM.

Fixture loading (loaddata, i.e. a restore) saves with raw=True; nothing is
recorded then, so a restore does not add audit rows of its own.
"""

from django.db.models.signals import post_save


def _record_creation(instance, user_id):
    from apps.audit.models import AuditTrail

    AuditTrail.objects.create(
        user_id=user_id,
        action=AuditTrail.Action.CREATE,
        content_object=instance,
        object_repr=str(instance)[:255],
    )


def document_saved(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        _record_creation(instance, instance.owner_id)


def workflow_saved(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        _record_creation(instance, instance.initiated_by_id)


def connect():
    post_save.connect(
        document_saved, sender="documents.Document", dispatch_uid="audit.document_saved"
    )
    post_save.connect(
        workflow_saved, sender="workflows.Workflow", dispatch_uid="audit.workflow_saved"
    )
