"""Keep writing to the EDMS the way users would, until stopped.

Every iteration goes through ordinary ORM saves (so the audit signals fire) and
runs in one transaction: a new document with a media file and a first version,
a workflow with participants and steps, the completion of some pending step,
now and then a soft delete, and UPDATE audit entries. One JSON line per
iteration goes to stdout. SIGTERM or SIGINT ends the loop after the current
iteration, with exit status 0.
"""

import hashlib
import json
import logging
import random
import signal
import time
import uuid
from datetime import timedelta

from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError, close_old_connections, transaction
from django.utils import timezone

from apps.audit.models import AuditTrail
from apps.documents.models import Document, DocumentType, DocumentVersion
from apps.users.models import User
from apps.workflows.models import Workflow, WorkflowStep

logger = logging.getLogger(__name__)

STEP_ACTIONS = [WorkflowStep.Action.REVIEW, WorkflowStep.Action.APPROVE, WorkflowStep.Action.SIGN]


class Command(BaseCommand):
    help = "Simulate live EDMS activity until SIGTERM/SIGINT, --duration or --iterations."

    def add_arguments(self, parser):
        parser.add_argument(
            "--interval", type=float, default=0.5, help="Seconds between iterations (default 0.5)."
        )
        parser.add_argument(
            "--duration", type=float, default=0, help="Stop after this many seconds (0 = no limit)."
        )
        parser.add_argument(
            "--iterations",
            type=int,
            default=0,
            help="Stop after this many iterations (0 = no limit).",
        )
        parser.add_argument(
            "--file-size", type=int, default=512, help="Bytes per new media file (default 512)."
        )
        parser.add_argument("--steps", type=int, default=3, help="Steps per new workflow.")
        parser.add_argument(
            "--delete-every",
            type=int,
            default=5,
            help="Soft-delete a random document every N iterations (0 = never).",
        )
        parser.add_argument(
            "--seed", type=int, default=None, help="Random seed (default: unseeded)."
        )

    def handle(self, *args, **options):
        self.stopping = False
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._request_stop)

        self.rng = random.Random(options["seed"])
        self.file_size = max(0, options["file_size"])
        self.steps = max(1, options["steps"])
        delete_every = max(0, options["delete_every"])
        interval = max(0.0, options["interval"])
        deadline = time.monotonic() + options["duration"] if options["duration"] > 0 else None
        limit = options["iterations"]

        if not User.objects.exists() or not DocumentType.objects.exists():
            raise CommandError("no users or document types yet; run seed_demo first")

        iteration = 0
        while not self.stopping:
            if limit and iteration >= limit:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            iteration += 1
            soft_delete = bool(delete_every) and iteration % delete_every == 0
            try:
                report = self.iterate(soft_delete)
            except (OperationalError, InterfaceError) as exc:
                # The database may be briefly away (restart, restore); keep going.
                logger.warning("simulate_activity: iteration %d failed: %s", iteration, exc)
                close_old_connections()
                report = {"error": str(exc).strip()}
            self.stdout.write(json.dumps({"iteration": iteration, **report}))
            self.stdout.flush()
            self.sleep(interval)

        logger.info("simulate_activity: stopped after %d iteration(s)", iteration)

    def _request_stop(self, signum, frame):
        self.stopping = True

    def sleep(self, seconds):
        """Sleep in short slices so a stop request is honoured promptly."""
        end = time.monotonic() + seconds
        while not self.stopping:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    def iterate(self, soft_delete):
        self.audit_ids = []
        with transaction.atomic():
            users = list(User.objects.filter(is_active=True).values_list("pk", flat=True))
            if not users:
                raise CommandError("no active users")
            document, version = self.create_document(users)
            workflow, people, steps = self.create_workflow(document, users)
            completed = self.complete_pending_step()
            deleted = self.soft_delete_one(exclude=document.pk) if soft_delete else None
            self.submit_for_review(document)
        return {
            "at": timezone.now().isoformat(),
            "document": str(document.pk),
            "document_number": document.document_number,
            "file": document.file.name,
            "version": str(version.pk),
            "workflow": workflow.pk,
            "participants": sorted(people),
            "steps": [step.pk for step in steps],
            "completed_step": completed,
            "soft_deleted": deleted,
            "audit_updates": self.audit_ids,
        }

    def create_document(self, users):
        owner_id = self.rng.choice(users)
        doc_type = self.rng.choice(list(DocumentType.objects.all()))
        number = f"ACT-{uuid.uuid4().hex[:12].upper()}"
        content = self.rng.randbytes(self.file_size)
        now = timezone.now()
        document = Document(
            document_number=number,
            title=f"{doc_type.name}: live activity {number}",
            document_type=doc_type,
            owner_id=owner_id,
            created_at=now,
            updated_at=now,
        )
        # Stores the file under documents/%Y/%m/ and saves the row (post_save fires).
        document.file.save(f"{number}.bin", ContentFile(content), save=True)
        version = DocumentVersion.objects.create(
            document=document,
            version_number=1,
            created_by_id=owner_id,
            created_at=now,
            change_summary="Initial issue.",
            checksum=hashlib.sha256(content).hexdigest(),
        )
        return document, version

    def create_workflow(self, document, users):
        people = self.rng.sample(users, min(3, len(users)))
        workflow = Workflow.objects.create(
            name=f"Review of {document.document_number}",
            document=document,
            initiated_by_id=document.owner_id,
            status=Workflow.Status.PENDING,
            due_date=(timezone.now() + timedelta(days=14)).date(),
        )
        workflow.participants.set(people)
        steps = [
            WorkflowStep.objects.create(
                workflow=workflow,
                order=order,
                assignee_id=people[(order - 1) % len(people)],
                action=STEP_ACTIONS[(order - 1) % len(STEP_ACTIONS)],
            )
            for order in range(1, self.steps + 1)
        ]
        return workflow, people, steps

    def complete_pending_step(self):
        pending = WorkflowStep.objects.filter(
            completed_at__isnull=True,
            workflow__status__in=[Workflow.Status.PENDING, Workflow.Status.IN_PROGRESS],
        )
        bounds = pending.order_by("pk").values_list("pk", flat=True)
        first, last = bounds.first(), bounds.last()
        if first is None:
            return None
        # A random point in the id range, then the next pending step: no full-table sort.
        pivot = self.rng.randint(first, last)
        step = pending.filter(pk__gte=pivot).order_by("pk").select_related("workflow").first()
        if step is None:  # completed meanwhile by another writer
            return None
        step.completed_at = timezone.now()
        step.comment = "Completed during simulated activity."
        step.save(update_fields=["completed_at", "comment"])

        workflow = step.workflow
        remaining = workflow.steps.filter(completed_at__isnull=True).exists()
        new_status = Workflow.Status.IN_PROGRESS if remaining else Workflow.Status.COMPLETED
        if workflow.status != new_status:
            old_status = workflow.status
            workflow.status = new_status
            workflow.save(update_fields=["status"])
            self.audit_update(workflow, step.assignee_id, {"status": [old_status, new_status]})
        return step.pk

    def soft_delete_one(self, exclude):
        active = Document.objects.exclude(pk=exclude)
        count = active.count()
        if not count:
            return None
        document = active.order_by("pk")[self.rng.randrange(count)]
        document.soft_delete()
        AuditTrail.objects.create(
            user_id=document.owner_id,
            action=AuditTrail.Action.DELETE,
            content_object=document,
            object_repr=str(document)[:255],
            details={"soft_delete": True},
        )
        return str(document.pk)

    def submit_for_review(self, document):
        old_status = document.status
        document.status = Document.Status.REVIEW
        document.updated_at = timezone.now()
        document.save(update_fields=["status", "updated_at"])
        self.audit_update(document, document.owner_id, {"status": [old_status, document.status]})

    def audit_update(self, instance, user_id, changes):
        entry = AuditTrail.objects.create(
            user_id=user_id,
            action=AuditTrail.Action.UPDATE,
            content_object=instance,
            object_repr=str(instance)[:255],
            details={"changes": changes},
        )
        self.audit_ids.append(entry.pk)
