"""Fill an empty EDMS database and media store with deterministic demo data.

The same --seed and sizes always give the same rows (UUIDs, timestamps,
relations) and the same media bytes, so a backup/restore round trip can be
compared field by field. Timestamps keep non-zero microseconds on purpose: a
tool that truncates them shows up as a difference.

Everything goes through bulk_create (no signals), so the CREATE audit entries
that the signals would have written are created here explicitly.
"""

import hashlib
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.audit.models import AuditTrail
from apps.backup.models import BackupConfiguration, BackupJob, JobStatus, RestoreJob
from apps.documents.models import Document, DocumentType, DocumentVersion
from apps.users.models import User
from apps.workflows.models import Workflow, WorkflowStep

logger = logging.getLogger(__name__)

BASE_TIME = datetime(2025, 1, 6, 8, 0, 0, 123456, tzinfo=UTC)
PASSWORD = "demo-password-not-secret"

PRESETS = {
    "tiny": {
        "users": 12,
        "documents": 60,
        "versions": 2,
        "workflows": 30,
        "steps": 3,
        "file_size": 2048,
    },
    "small": {
        "users": 50,
        "documents": 1000,
        "versions": 2,
        "workflows": 1000,
        "steps": 3,
        "file_size": 1024,
    },
    "medium": {
        "users": 500,
        "documents": 2000,
        "versions": 10,
        "workflows": 20000,
        "steps": 5,
        "file_size": 1024,
    },
    "large": {
        "users": 2000,
        "documents": 10000,
        "versions": 20,
        "workflows": 100000,
        "steps": 6,
        "file_size": 1024,
    },
}

# Offsets between consecutive objects, in microseconds; none is a whole second.
USER_STEP_US = 15_768_000_123  # ~4.4 hours
DOCUMENT_STEP_US = 3_671_250_371  # ~1 hour
VERSION_STEP_US = 600_000_137  # ~10 minutes
DELETE_AFTER_US = 86_400_000_251  # ~1 day
WORKFLOW_START_US = 3 * 86_400_000_000
WORKFLOW_STEP_US = 271_828_183  # ~4.5 minutes
STEP_DONE_US = 3_600_000_071  # ~1 hour

DEPARTMENTS = [
    "Quality Assurance",
    "Regulatory Affairs",
    "Manufacturing",
    "Research and Development",
    "Document Control",
]
FIRST_NAMES = [
    "Alice",
    "Bala",
    "Chen",
    "Dewi",
    "Emeka",
    "Farah",
    "Goran",
    "Hana",
    "Ivan",
    "Jia",
    "Kofi",
    "Lena",
    "Mei",
    "Nadia",
    "Omar",
    "Priya",
]
LAST_NAMES = [
    "Tan",
    "Lim",
    "Ng",
    "Kumar",
    "Wong",
    "Rahman",
    "Schmidt",
    "Okafor",
    "Silva",
    "Novak",
    "Ito",
]
DOCUMENT_TYPES = [
    ("SOP", "Standard Operating Procedure"),
    ("WI", "Work Instruction"),
    ("FORM", "Form"),
    ("POL", "Policy"),
    ("SPEC", "Specification"),
]
TOPICS = [
    "Equipment cleaning",
    "Batch record review",
    "Deviation handling",
    "Change control",
    "Supplier qualification",
    "Training records",
    "Calibration",
    "Sample retention",
    "Label control",
    "Data integrity",
]
DOCUMENT_STATUSES = [
    Document.Status.DRAFT,
    Document.Status.REVIEW,
    Document.Status.APPROVED,
    Document.Status.EFFECTIVE,
    Document.Status.EFFECTIVE,
]
WORKFLOW_KINDS = ["Review", "Approval", "Periodic review", "Change control"]
WORKFLOW_STATUSES = [
    Workflow.Status.PENDING,
    Workflow.Status.IN_PROGRESS,
    Workflow.Status.COMPLETED,
    Workflow.Status.CANCELLED,
]
STEP_ACTIONS = [WorkflowStep.Action.REVIEW, WorkflowStep.Action.APPROVE, WorkflowStep.Action.SIGN]
GROUP_PERMISSIONS = {
    "Authors": [
        ("documents", "add_document"),
        ("documents", "change_document"),
        ("documents", "view_document"),
        ("documents", "add_documentversion"),
        ("documents", "view_documentversion"),
        ("workflows", "add_workflow"),
        ("workflows", "view_workflow"),
    ],
    "Reviewers": [
        ("documents", "view_document"),
        ("documents", "view_documentversion"),
        ("workflows", "view_workflow"),
        ("workflows", "view_workflowstep"),
        ("workflows", "change_workflowstep"),
    ],
    "Approvers": [
        ("documents", "view_document"),
        ("documents", "change_document"),
        ("documents", "view_documentversion"),
        ("workflows", "view_workflow"),
        ("workflows", "change_workflow"),
        ("workflows", "view_workflowstep"),
        ("workflows", "change_workflowstep"),
    ],
}
PARTICIPANTS_PER_WORKFLOW = 3
SOFT_DELETE_EVERY = 10  # document i with i % 10 == 9 is soft-deleted
DELETED_REFERENCE_EVERY = 50  # workflow j with j % 50 == 0 points at a soft-deleted document


def shifted(moment, offset_us):
    """`moment` plus an offset in microseconds, never landing on a whole second."""
    moment += timedelta(microseconds=offset_us)
    if moment.microsecond == 0:
        moment += timedelta(microseconds=1)
    return moment


def at(offset_us):
    return shifted(BASE_TIME, offset_us)


def file_bytes(seed, index, size):
    """Deterministic content of exactly `size` bytes for document `index`."""
    out = bytearray()
    block = 0
    while len(out) < size:
        out += hashlib.sha256(f"edms-demo:{seed}:{index}:{block}".encode()).digest()
        block += 1
    return bytes(out[:size])


def is_soft_deleted(i):
    return i % SOFT_DELETE_EVERY == SOFT_DELETE_EVERY - 1


def active_document_index(k):
    """The k-th document (0-based) that is not soft-deleted."""
    per_block = SOFT_DELETE_EVERY - 1
    return (k // per_block) * SOFT_DELETE_EVERY + k % per_block


def count_labels():
    participants = Workflow.participants.through
    return {
        "users.user": User.objects,
        "auth.group": Group.objects,
        "documents.documenttype": DocumentType.objects,
        "documents.document": Document.all_objects,
        "documents.documentversion": DocumentVersion.objects,
        "workflows.workflow": Workflow.objects,
        "workflows.workflowstep": WorkflowStep.objects,
        "workflows.workflow_participants": participants.objects,
        "backup.backupconfiguration": BackupConfiguration.objects,
        "backup.backupjob": BackupJob.objects,
        "backup.restorejob": RestoreJob.objects,
        "audit.audittrail": AuditTrail.objects,
    }


class Command(BaseCommand):
    help = "Seed an empty database and media store with deterministic EDMS demo data."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=1, help="Data seed (default 1).")
        parser.add_argument(
            "--scale",
            choices=sorted(PRESETS),
            default="tiny",
            help="Size preset (default tiny); explicit sizes override it.",
        )
        parser.add_argument("--users", type=int, help="Number of users (user 0 is 'admin').")
        parser.add_argument("--documents", type=int, help="Number of documents.")
        parser.add_argument("--versions", type=int, help="Versions per document.")
        parser.add_argument("--workflows", type=int, help="Number of workflows.")
        parser.add_argument("--steps", type=int, help="Steps per workflow.")
        parser.add_argument("--file-size", type=int, help="Bytes per document media file.")
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing (and say so) when any user exists."
        )
        parser.add_argument(
            "--batch-size", type=int, default=2000, help="Rows per bulk insert (default 2000)."
        )

    def handle(self, *args, **options):
        sizes = dict(PRESETS[options["scale"]])
        for key in sizes:
            if options.get(key) is not None:
                sizes[key] = options[key]
        self._validate(sizes, options["batch_size"])

        existing = User.objects.count()
        if existing:
            reason = f"database already has {existing} user(s)"
            if options["if_empty"]:
                self.stdout.write(json.dumps({"seeded": False, "reason": reason}))
                return
            raise CommandError(
                f"{reason}; seed_demo only fills an empty database (use --if-empty to skip quietly)"
            )

        seeder = Seeder(options["seed"], sizes, options["batch_size"])
        started = time.monotonic()
        with transaction.atomic():
            seeder.run()
        logger.info("seed_demo: done in %.1fs", time.monotonic() - started)

        counts = {label: manager.count() for label, manager in count_labels().items()}
        self.stdout.write(
            json.dumps(
                {
                    "seeded": True,
                    "counts": counts,
                    "media_files": seeder.media_files,
                    "file_size": sizes["file_size"],
                }
            )
        )

    @staticmethod
    def _validate(sizes, batch_size):
        if sizes["users"] < 1:
            raise CommandError("--users must be at least 1 (user 0 is the administrator)")
        for key, value in sizes.items():
            if value < 0:
                raise CommandError(f"--{key.replace('_', '-')} must not be negative")
        if sizes["workflows"] and not sizes["documents"]:
            raise CommandError("workflows need at least one document")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")


class Seeder:
    def __init__(self, seed, sizes, batch_size):
        self.seed = seed
        self.namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"edms-demo/seed/{seed}")
        self.sizes = sizes
        self.batch_size = batch_size
        self.user_ids = []
        self.media_files = 0

    def uuid(self, name):
        return uuid.uuid5(self.namespace, name)

    def bulk(self, manager, objects):
        if objects:
            manager.bulk_create(objects, batch_size=self.batch_size)
        objects.clear()

    def run(self):
        self.seed_users()
        self.seed_groups()
        self.seed_document_types()
        self.seed_documents()
        self.seed_workflows()
        self.seed_backups()

    # Users and groups -------------------------------------------------------

    def seed_users(self):
        # One hash for everybody; a fixed salt keeps it identical between runs.
        password = make_password(PASSWORD, salt=f"edmsdemo{self.seed}")
        users = []
        for i in range(self.sizes["users"]):
            joined = at(-365 * 86_400_000_000 + i * USER_STEP_US)
            if i == 0:
                users.append(
                    User(
                        username="admin",
                        email="admin@edms.example",
                        first_name="System",
                        last_name="Administrator",
                        department="Document Control",
                        employee_id=None,
                        is_staff=True,
                        is_superuser=True,
                        password=password,
                        date_joined=joined,
                    )
                )
                continue
            username = f"user{i:04d}"
            users.append(
                User(
                    username=username,
                    email=f"{username}@edms.example",
                    first_name=FIRST_NAMES[i % len(FIRST_NAMES)],
                    last_name=LAST_NAMES[i % len(LAST_NAMES)],
                    department=DEPARTMENTS[(i - 1) % len(DEPARTMENTS)],
                    employee_id=f"EMP-{i:05d}",
                    password=password,
                    date_joined=joined,
                )
            )
        User.objects.bulk_create(users, batch_size=self.batch_size)
        self.user_ids = [user.pk for user in users]
        logger.info("seed_demo: %d users", len(users))

    def seed_groups(self):
        groups = []
        for name, wanted in GROUP_PERMISSIONS.items():
            group = Group.objects.get_or_create(name=name)[0]
            permissions = []
            for app_label, codename in wanted:
                try:
                    permissions.append(
                        Permission.objects.get(content_type__app_label=app_label, codename=codename)
                    )
                except Permission.DoesNotExist as exc:
                    raise CommandError(
                        f"permission {app_label}.{codename} is missing; run migrate first"
                    ) from exc
            group.permissions.set(permissions)
            groups.append(group)
        memberships = [
            User.groups.through(user_id=user_id, group_id=groups[i % len(groups)].pk)
            for i, user_id in enumerate(self.user_ids)
        ]
        self.bulk(User.groups.through.objects, memberships)

    def seed_document_types(self):
        self.document_types = []
        for code, name in DOCUMENT_TYPES:
            doc_type = DocumentType.objects.update_or_create(code=code, defaults={"name": name})[0]
            self.document_types.append(doc_type)

    # Documents ----------------------------------------------------------------

    def owner_of(self, i):
        """Document i's owner: any user but the administrator, when there is one."""
        if len(self.user_ids) == 1:
            return self.user_ids[0]
        return self.user_ids[1 + i % (len(self.user_ids) - 1)]

    def seed_documents(self):
        total = self.sizes["documents"]
        doc_ct = ContentType.objects.get_for_model(Document)
        for start in range(0, total, self.batch_size):
            documents, versions, audits = [], [], []
            for i in range(start, min(total, start + self.batch_size)):
                document, document_versions = self.build_document(i)
                documents.append(document)
                versions.extend(document_versions)
                audits.append(
                    AuditTrail(
                        user_id=document.owner_id,
                        action=AuditTrail.Action.CREATE,
                        content_type=doc_ct,
                        object_id=str(document.pk),
                        object_repr=str(document)[:255],
                        timestamp=document.created_at,
                    )
                )
                if len(versions) >= self.batch_size:
                    self.bulk(Document.all_objects, documents)
                    self.bulk(DocumentVersion.objects, versions)
            self.bulk(Document.all_objects, documents)
            self.bulk(DocumentVersion.objects, versions)
            self.bulk(AuditTrail.objects, audits)
            logger.info("seed_demo: documents %d/%d", min(total, start + self.batch_size), total)

    def build_document(self, i):
        number = f"DOC-{i:06d}"
        created = at(i * DOCUMENT_STEP_US)
        doc_type = self.document_types[i % len(self.document_types)]
        owner_id = self.owner_of(i)
        document_id = self.uuid(f"document-{i}")

        name = f"documents/{created:%Y}/{created:%m}/{number}.bin"
        digest = self.write_file(name, file_bytes(self.seed, i, self.sizes["file_size"]))

        versions = []
        updated = created
        count = self.sizes["versions"]
        for v in range(count):
            updated = at(i * DOCUMENT_STEP_US + v * VERSION_STEP_US)
            # The latest version's checksum is the media file's SHA-256.
            checksum = (
                digest
                if v == count - 1
                else hashlib.sha256(f"{self.seed}:{number}:v{v + 1}".encode()).hexdigest()
            )
            versions.append(
                DocumentVersion(
                    id=self.uuid(f"version-{i}-{v + 1}"),
                    document_id=document_id,
                    version_number=v + 1,
                    created_by_id=owner_id
                    if v == 0
                    else self.user_ids[(i + v) % len(self.user_ids)],
                    created_at=updated,
                    change_summary="Initial issue." if v == 0 else f"Revision {v + 1}: updates.",
                    checksum=checksum,
                )
            )

        deleted = is_soft_deleted(i)
        document = Document(
            id=document_id,
            document_number=number,
            title=f"{doc_type.name}: {TOPICS[i % len(TOPICS)]} ({number})",
            document_type=doc_type,
            owner_id=owner_id,
            file=name,
            status=Document.Status.OBSOLETE
            if deleted
            else DOCUMENT_STATUSES[i % len(DOCUMENT_STATUSES)],
            created_at=created,
            updated_at=updated,
            is_deleted=deleted,
            deleted_at=shifted(updated, DELETE_AFTER_US) if deleted else None,
        )
        return document, versions

    def write_file(self, name, content):
        # Replace any leftover from an earlier seeding so the stored name stays exact.
        if default_storage.exists(name):
            default_storage.delete(name)
        saved = default_storage.save(name, ContentFile(content))
        if saved != name:
            raise CommandError(f"media file stored as {saved!r} instead of {name!r}")
        self.media_files += 1
        return hashlib.sha256(content).hexdigest()

    # Workflows ------------------------------------------------------------------

    def document_index_for_workflow(self, j):
        documents = self.sizes["documents"]
        deleted = documents // SOFT_DELETE_EVERY
        if j % DELETED_REFERENCE_EVERY == 0 and deleted:
            k = (j // DELETED_REFERENCE_EVERY) % deleted
            return k * SOFT_DELETE_EVERY + SOFT_DELETE_EVERY - 1
        return active_document_index(j % (documents - deleted))

    def seed_workflows(self):
        total = self.sizes["workflows"]
        steps_per = self.sizes["steps"]
        n_users = len(self.user_ids)
        per_workflow = min(PARTICIPANTS_PER_WORKFLOW, n_users)
        wf_ct = ContentType.objects.get_for_model(Workflow)
        through = Workflow.participants.through
        for start in range(0, total, self.batch_size):
            workflows, participants = [], {}
            for j in range(start, min(total, start + self.batch_size)):
                i = self.document_index_for_workflow(j)
                created = at(WORKFLOW_START_US + j * WORKFLOW_STEP_US)
                workflows.append(
                    Workflow(
                        name=f"{WORKFLOW_KINDS[j % len(WORKFLOW_KINDS)]} of DOC-{i:06d}",
                        document_id=self.uuid(f"document-{i}"),
                        initiated_by_id=self.owner_of(i),
                        status=WORKFLOW_STATUSES[j % len(WORKFLOW_STATUSES)],
                        created_at=created,
                        due_date=None if j % 7 == 6 else (created + timedelta(days=14)).date(),
                    )
                )
                participants[j] = [self.user_ids[(j + k) % n_users] for k in range(per_workflow)]
            # Integer primary keys come back from PostgreSQL's INSERT ... RETURNING.
            Workflow.objects.bulk_create(workflows, batch_size=self.batch_size)

            links, steps, audits = [], [], []
            for j, workflow in enumerate(workflows, start=start):
                people = participants[j]
                links.extend(through(workflow_id=workflow.pk, user_id=uid) for uid in people)
                steps.extend(self.build_steps(workflow, people, steps_per))
                audits.append(
                    AuditTrail(
                        user_id=workflow.initiated_by_id,
                        action=AuditTrail.Action.CREATE,
                        content_type=wf_ct,
                        object_id=str(workflow.pk),
                        object_repr=str(workflow)[:255],
                        timestamp=workflow.created_at,
                    )
                )
                if len(steps) >= self.batch_size:
                    self.bulk(WorkflowStep.objects, steps)
                    self.bulk(through.objects, links)
            self.bulk(WorkflowStep.objects, steps)
            self.bulk(through.objects, links)
            self.bulk(AuditTrail.objects, audits)
            logger.info("seed_demo: workflows %d/%d", min(total, start + self.batch_size), total)

    @staticmethod
    def build_steps(workflow, people, count):
        if workflow.status == Workflow.Status.COMPLETED:
            done = count
        elif workflow.status == Workflow.Status.IN_PROGRESS:
            done = count // 2
        else:
            done = 0
        steps = []
        for order in range(1, count + 1):
            completed = order <= done
            steps.append(
                WorkflowStep(
                    workflow_id=workflow.pk,
                    order=order,
                    assignee_id=people[(order - 1) % len(people)],
                    action=STEP_ACTIONS[(order - 1) % len(STEP_ACTIONS)],
                    completed_at=(
                        shifted(workflow.created_at, order * STEP_DONE_US) if completed else None
                    ),
                    comment="Checked; no findings." if completed else "",
                )
            )
        return steps

    # Backup bookkeeping -------------------------------------------------------------

    def seed_backups(self):
        admin_id = self.user_ids[0]
        nightly = BackupConfiguration(
            id=self.uuid("backup-configuration-0"),
            name="Nightly full backup",
            backup_type=BackupConfiguration.BackupType.FULL,
            include_files=True,
            created_by_id=admin_id,
            created_at=at(60_000_017),
        )
        hourly = BackupConfiguration(
            id=self.uuid("backup-configuration-1"),
            name="Hourly database backup",
            backup_type=BackupConfiguration.BackupType.DATABASE,
            include_files=False,
            created_by_id=admin_id,
            created_at=at(120_000_029),
        )
        BackupConfiguration.objects.bulk_create([nightly, hourly])

        jobs = []
        for n, (config, status, size) in enumerate(
            [
                (nightly, JobStatus.COMPLETED, 734_003_201),
                (hourly, JobStatus.COMPLETED, 52_428_807),
                (nightly, JobStatus.FAILED, 0),
            ]
        ):
            started = at(14 * 3_600_000_000 + n * 86_400_000_000 + n * 1_000_003)
            jobs.append(
                BackupJob(
                    id=self.uuid(f"backup-job-{n}"),
                    configuration=config,
                    status=status,
                    backup_path=(
                        f"/app/backups/{started:%Y%m%d_%H%M%S}"
                        if status == JobStatus.COMPLETED
                        else ""
                    ),
                    size_bytes=size,
                    started_at=started,
                    completed_at=shifted(started, 95_000_047 + n * 1_000_001),
                    created_by_id=admin_id,
                )
            )
        BackupJob.objects.bulk_create(jobs)

        restore_started = shifted(jobs[0].completed_at, 7_200_000_113)
        RestoreJob.objects.bulk_create(
            [
                RestoreJob(
                    id=self.uuid("restore-job-0"),
                    backup_job=jobs[0],
                    status=JobStatus.COMPLETED,
                    requested_by_id=admin_id,
                    started_at=restore_started,
                    completed_at=shifted(restore_started, 180_000_019),
                    notes="Restore drill on staging.",
                )
            ]
        )
