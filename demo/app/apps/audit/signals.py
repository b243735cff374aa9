"""Audit entries for objects created through the ORM.

Fixture loading (loaddata, i.e. a restore) saves with raw=True; nothing is
recorded then, so a restore does not add audit rows of its own.

m2m_changed has no raw flag: the participants receiver checks the restore
marker instead (the setting EDMS_RESTORE_IN_PROGRESS, or the environment
variable of the same name, both set by the edms.backup restore).
"""

import os

from django.conf import settings
from django.db.models.signals import m2m_changed, post_save


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


def restore_in_progress():
    return bool(getattr(settings, "EDMS_RESTORE_IN_PROGRESS", False)) or (
        os.environ.get("EDMS_RESTORE_IN_PROGRESS") == "1"
    )


def participants_changed(sender, instance, action, reverse=False, **kwargs):
    if action != "post_add" or reverse or restore_in_progress():
        return
    from apps.audit.models import AuditTrail

    AuditTrail.objects.create(
        user_id=instance.initiated_by_id,
        action=AuditTrail.Action.UPDATE,
        content_object=instance,
        object_repr=str(instance)[:255],
        details={"participants": action},
    )


def connect():
    from apps.workflows.models import Workflow

    post_save.connect(
        document_saved, sender="documents.Document", dispatch_uid="audit.document_saved"
    )
    post_save.connect(
        workflow_saved, sender="workflows.Workflow", dispatch_uid="audit.workflow_saved"
    )
    m2m_changed.connect(
        participants_changed,
        sender=Workflow.participants.through,
        dispatch_uid="audit.participants_changed",
    )
