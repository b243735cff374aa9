"""The audit ledger's post_save receiver.

It records every save of a LIMS model, a fixture load's too: it does not skip
raw saves (loaddata), as many real applications' receivers do not. A restore
through loaddata therefore adds audit rows of its own, unless the tool doing
it accounts for that.
"""

from django.contrib.contenttypes.models import ContentType
from django.db.models.signals import post_save

from ledger import clock

AUDITED_APPS = {"personnel", "specimens", "analyses"}


def record_save(sender, instance, created, raw=False, **kwargs):
    if sender._meta.app_label not in AUDITED_APPS:
        return
    from ledger.models import AuditEntry

    AuditEntry.objects.create(
        content_type=ContentType.objects.get_for_model(sender, for_concrete_model=False),
        object_pk=str(instance.pk),
        action="create" if created else "update",
        raw=raw,
        recorded_at=clock.now(),
        summary={"label": sender._meta.label, "str": str(instance)[:120]},
    )


def connect():
    post_save.connect(record_save, dispatch_uid="ledger.record_save")
