"""A synthetic EDMS-like dataset for the benchmarks: the demo application's
models, this collection's archive layout and metadata.

Users, document types, documents (UUID keys, one 1 KiB media file each),
document versions, workflows with participants and steps, and audit entries,
per document as in the demo's "large" seed preset; references by natural key
where the demo's backups use them. The fixture loads into a migrated demo
database (manage.py migrate) with this collection's load and with loaddata.

``version_text`` adds that many bytes of text to every document version's
change summary: a fixture of the same size with fewer, larger objects.
"""

import argparse
import hashlib
import json
import os
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The links committed in collections/ansible_collections/edms/backup (ansible.cfg).
COLLECTIONS = os.path.join(ROOT, "collections")
sys.path.insert(0, COLLECTIONS)

from ansible_collections.edms.backup.plugins.module_utils._format.archive import (  # noqa: E402
    FIXTURE,
    ArchiveWriter,
    archive_name,
)

MB = 1 << 20
BASE_TIME = datetime(2025, 1, 6, 8, 0, 0, 123456, tzinfo=UTC)
# Per document, as in the demo's "large" seed preset: versions, workflows
# and steps per workflow; plus audit entries.
VERSIONS, WORKFLOWS, STEPS, AUDIT, PARTICIPANTS = 20, 10, 6, 20, 3
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
    "Calibration",
    "Sample retention",
    "Data integrity",
]
WORDS = [
    "review",
    "update",
    "clarify",
    "section",
    "scope",
    "responsibility",
    "record",
    "training",
    "procedure",
    "reference",
    "annex",
    "revision",
    "approval",
]

RELATIONS = {
    "users.user": {
        "groups": {"model": "auth.group", "many": True},
        "user_permissions": {"model": "auth.permission", "many": True},
    },
    "documents.document": {
        "document_type": {"model": "documents.documenttype", "many": False},
        "owner": {"model": "users.user", "many": False},
    },
    "documents.documentversion": {
        "document": {"model": "documents.document", "many": False},
        "created_by": {"model": "users.user", "many": False},
    },
    "workflows.workflow": {
        "document": {"model": "documents.document", "many": False},
        "initiated_by": {"model": "users.user", "many": False},
        "participants": {"model": "users.user", "many": True},
    },
    "workflows.workflowstep": {
        "workflow": {"model": "workflows.workflow", "many": False},
        "assignee": {"model": "users.user", "many": False},
    },
    "audit.audittrail": {
        "user": {"model": "users.user", "many": False},
        "content_type": {"model": "contenttypes.contenttype", "many": False},
    },
}


def stamp(offset_seconds):
    moment = BASE_TIME + timedelta(seconds=offset_seconds, microseconds=offset_seconds % 999983)
    return moment.isoformat().replace("+00:00", "Z")


def sorted_uuid(rng, index):
    """A random-looking version 4 UUID that sorts by index, as pk order has it."""
    return str(uuid.UUID(int=(index << 80) | rng.getrandbits(80), version=4))


def obj(model, pk, **fields):
    return {"model": model, "pk": pk, "fields": fields}


def sentence(rng, words):
    return " ".join(rng.choice(WORDS) for _word in range(words)).capitalize() + "."


class Dataset:
    """An EDMS-like fixture of `documents` documents and what hangs off them."""

    def __init__(self, documents, seed=1, version_text=0):
        self.documents = documents
        self.version_text = version_text
        self.users = max(50, documents // 5)
        self.seed = seed
        self.counts = {
            "auth.group": 1,
            "users.user": self.users,
            "documents.documenttype": len(DOCUMENT_TYPES),
            "documents.document": documents,
            "documents.documentversion": documents * VERSIONS,
            "workflows.workflow": documents * WORKFLOWS,
            "workflows.workflowstep": documents * WORKFLOWS * STEPS,
            "audit.audittrail": documents * AUDIT,
        }
        self.m2m = {
            "workflows.workflow_participants": documents * WORKFLOWS * PARTICIPANTS,
            "users.user_groups": self.users,
            "auth.group_permissions": 2,
            "users.user_user_permissions": 0,
        }

    def username(self, index):
        """One of the users, picked by any integer."""
        return f"user{index % self.users + 1:06d}"

    def file_name(self, index):
        return f"documents/2025/{index % 12 + 1:02d}/DOC-{index:06d}.bin"

    def objects(self):
        """Every object, models in dependency order, rows in pk order."""
        rng = random.Random(self.seed)
        # Texts of version_text bytes, drawn from a pool: making one per
        # version would cost more time than the rest of the fixture.
        texts = [self.text(rng) for _text in range(64)] if self.version_text else [""]
        permissions = [
            ["add_document", "documents", "document"],
            ["view_document", "documents", "document"],
        ]
        yield obj("auth.group", 1, name="Authors", permissions=permissions)
        for i in range(1, self.users + 1):
            yield self.user(i)
        for i, (code, name) in enumerate(DOCUMENT_TYPES, 1):
            yield obj("documents.documenttype", i, code=code, name=name)
        docs = [sorted_uuid(rng, i) for i in range(self.documents)]
        for i, pk in enumerate(docs):
            yield self.document(rng, i, pk)
        for j in range(self.documents * VERSIONS):
            yield obj(
                "documents.documentversion",
                sorted_uuid(rng, j),
                document=docs[j // VERSIONS],
                version_number=j % VERSIONS + 1,
                created_by=[self.username(j)],
                created_at=stamp(j * 600),
                change_summary=sentence(rng, rng.randint(8, 30)) + rng.choice(texts),
                checksum=hashlib.sha256(b"%d" % j).hexdigest(),
            )
        for w in range(1, self.documents * WORKFLOWS + 1):
            yield obj(
                "workflows.workflow",
                w,
                name=f"Review of DOC-{(w - 1) // WORKFLOWS:06d}",
                document=docs[(w - 1) // WORKFLOWS],
                initiated_by=[self.username(w)],
                participants=[[self.username(w + k)] for k in range(PARTICIPANTS)],
                status="IN_PROGRESS",
                created_at=stamp(w * 271),
                due_date="2025-03-01",
            )
        for s in range(1, self.documents * WORKFLOWS * STEPS + 1):
            yield obj(
                "workflows.workflowstep",
                s,
                workflow=(s - 1) // STEPS + 1,
                order=(s - 1) % STEPS + 1,
                assignee=[self.username(s)],
                action="REVIEW",
                completed_at=stamp(s * 97) if s % 3 else None,
                comment=sentence(rng, rng.randint(1, 12)) if s % 2 else "",
            )
        for a in range(1, self.documents * AUDIT + 1):
            yield obj(
                "audit.audittrail",
                a,
                user=[self.username(a)],
                action="UPDATE",
                content_type=["documents", "document"],
                object_id=docs[(a - 1) // AUDIT],
                object_repr=f"DOC-{(a - 1) // AUDIT:06d}",
                timestamp=stamp(a * 13),
                details={"field": "status", "old": "REVIEW", "new": "EFFECTIVE"},
            )

    def text(self, rng):
        words = []
        size = 0
        while size < self.version_text:
            words.append(rng.choice(WORDS))
            size += len(words[-1]) + 1
        return (" " + " ".join(words))[: self.version_text]

    def user(self, i):
        name = self.username(i)
        salt = hashlib.sha256(b"%d" % i).hexdigest()[:22]
        return obj(
            "users.user",
            i,
            password=f"pbkdf2_sha256$1000000${salt}${hashlib.sha256(name.encode()).hexdigest()}",
            last_login=stamp(i * 3600),
            is_superuser=False,
            username=name,
            first_name="Alice",
            last_name="Tan",
            email=f"{name}@example.com",
            is_staff=False,
            is_active=True,
            date_joined=stamp(i * 60),
            department="Quality Assurance",
            employee_id=f"E{i:06d}",
            groups=[["Authors"]],
            user_permissions=[],
        )

    def document(self, rng, i, pk):
        deleted = i % 10 == 9  # soft-deleted, as the demo seed has them
        return obj(
            "documents.document",
            pk,
            document_number=f"DOC-{i:06d}",
            title=f"{rng.choice(TOPICS)} {i}",
            document_type=[DOCUMENT_TYPES[i % len(DOCUMENT_TYPES)][0]],
            owner=[self.username(i)],
            file=self.file_name(i),
            status="EFFECTIVE",
            created_at=stamp(i * 3671),
            updated_at=stamp(i * 3700),
            is_deleted=deleted,
            deleted_at=stamp(i * 3800) if deleted else None,
        )

    def fixture(self):
        """The fixture, one object per line, in blocks of bytes."""
        yield b"["
        separator = b"\n"
        block = []
        for obj in self.objects():
            block.append(separator + json.dumps(obj, ensure_ascii=False).encode())
            separator = b",\n"
            if len(block) == 2000:
                yield b"".join(block)
                block = []
        yield b"".join(block) + b"\n]\n"

    def metadata(self):
        return {
            "format": "edms.backup",
            "format_version": 1,
            "label": "benchmark",
            "created_at": stamp(0),
            "counts": {**self.counts, **self.m2m},
            "m2m_tables": sorted(self.m2m),
            "relations": RELATIONS,
            "natural_keys": {
                "users.user": ["username"],
                "documents.documenttype": ["code"],
                "auth.group": ["name"],
            },
            "file_fields": {"documents.document": ["file"]},
            "excluded_models": ["contenttypes", "auth.permission", "sessions", "admin.logentry"],
            "recreated_models": ["contenttypes.contenttype", "auth.permission"],
            "required_models": ["users.user", "documents.document", "workflows.workflow"],
        }


def bytes_per_document(version_text=0):
    sample = Dataset(documents=20, version_text=version_text)
    return sum(len(block) for block in sample.fixture()) / 20


def write_archive(directory, size_mb, index, version_text=0):
    """An archive whose fixture is about size_mb; (path, fixture bytes, objects, media files)."""
    documents = max(1, round(size_mb * MB / bytes_per_document(version_text)))
    return write_documents(directory, documents, f"_bench{index}", version_text)


def write_documents(directory, documents, suffix, version_text=0, seed=1):
    """An archive of `documents` documents; (path, fixture bytes, objects, media files)."""
    dataset = Dataset(documents=documents, seed=seed, version_text=version_text)
    name = archive_name(datetime.now(UTC), suffix=suffix)
    rng = random.Random(seed)
    with ArchiveWriter(directory, name) as writer:
        writer.add_stream(FIXTURE, dataset.fixture())
        for i in range(dataset.documents):
            writer.add_stream("media/" + dataset.file_name(i), rng.randbytes(1024))
        path = writer.finish(dataset.metadata())
    return path, writer.members[FIXTURE]["size"], sum(dataset.counts.values()), dataset.documents


def size_parser(doc, what):
    """The options both memory harnesses share: --sizes (at least two: the result
    is their ratio), --repeat and --max-ratio; `what` is one measured run."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n", maxsplit=1)[0])
    parser.add_argument(
        "--sizes",
        type=float,
        nargs="+",
        default=[50, 500],
        metavar="MB",
        help="fixture sizes in MB (default: 50 500)",
    )
    parser.add_argument("--repeat", type=int, default=1, help=f"{what} per size (median)")
    parser.add_argument(
        "--max-ratio",
        type=float,
        default=1.5,
        help="largest peak RSS over smallest allowed (default: 1.5)",
    )
    return parser


def check_sizes(parser, args):
    if len(set(args.sizes)) < 2:
        parser.error("--sizes needs at least two different sizes: the result is their ratio")
