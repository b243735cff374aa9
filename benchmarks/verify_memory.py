"""Peak memory of archive verification against fixture size.

Writes synthetic EDMS-like archives (this collection's layout and metadata:
relations, natural keys, file fields, one 1 KiB media file per document) of
the given fixture sizes with ArchiveWriter, and measures in fresh child
processes the peak RSS (VmHWM) and the throughput of

- verify_archive on the whole archive, and
- the fixture pass alone (iter_fixture and FixtureAnalysis over a plain copy
  of the fixture, metadata without its member list): what grows with the
  fixture itself, apart from what grows with the number of members.

Exit 1 when an archive does not verify, or when the largest archive's peak
RSS for verify_archive exceeds the smallest one's by more than --max-ratio.

    .venv/bin/python benchmarks/verify_memory.py --sizes 50 500
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, "build", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "edms", "backup")
if not os.path.islink(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(os.path.join("..", "..", "..", ".."), LINK)
sys.path.insert(0, COLLECTIONS)

from ansible_collections.edms.backup.plugins.module_utils._archive import (  # noqa: E402
    FIXTURE,
    METADATA,
    ArchiveReader,
    ArchiveWriter,
    archive_name,
    verify_archive,
)
from ansible_collections.edms.backup.plugins.module_utils._fixture import (  # noqa: E402
    FixtureAnalysis,
    iter_fixture,
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

    def __init__(self, documents, seed=1):
        self.documents = documents
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
                change_summary=sentence(rng, rng.randint(8, 30)),
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


def bytes_per_document():
    sample = Dataset(documents=20)
    return sum(len(block) for block in sample.fixture()) / 20


def copy_fixture(path, directory):
    """The fixture and the metadata without its member list, as plain files."""
    os.makedirs(directory)
    with ArchiveReader.open(path) as reader:
        with reader.open_member(METADATA) as stream:
            metadata = json.loads(stream.read())
        with (
            reader.open_member(FIXTURE) as stream,
            open(os.path.join(directory, FIXTURE), "wb") as out,
        ):
            shutil.copyfileobj(stream, out, MB)
    del metadata["members"]
    with open(os.path.join(directory, METADATA), "w") as out:
        json.dump(metadata, out)
    return directory


def write_archive(directory, size_mb, index):
    dataset = Dataset(documents=max(1, round(size_mb * MB / bytes_per_document())))
    name = archive_name(datetime.now(UTC), suffix=f"_bench{index}")
    with ArchiveWriter(directory, name) as writer:
        writer.add_stream(FIXTURE, dataset.fixture())
        for i in range(dataset.documents):
            writer.add_stream("media/" + dataset.file_name(i), random.randbytes(1024))
        path = writer.finish(dataset.metadata())
    return path, writer.members[FIXTURE]["size"], sum(dataset.counts.values()), dataset.documents


def peak_rss_kb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(mode, path):
    """Verify one archive (mode "verify"), or only stream and analyse a
    fixture and metadata copied out of it into directory `path` (mode
    "fixture"); print what the parent measures, as JSON."""
    baseline = peak_rss_kb()
    start = time.monotonic()
    if mode == "verify":
        result = verify_archive(path)
        ok, problems = result["ok"], result["problems"]
    else:
        with open(os.path.join(path, METADATA)) as handle:
            metadata = json.load(handle)
        analysis = FixtureAnalysis(
            relations=metadata["relations"],
            natural_keys=metadata["natural_keys"],
            recreated_models=metadata["recreated_models"],
        )
        with open(os.path.join(path, FIXTURE), "rb") as stream:
            for obj in iter_fixture(stream):
                analysis.add(obj)
        report = analysis.report()
        ok = report["references"]["dangling"] == 0 and report["duplicates"]["count"] == 0
        problems = [] if ok else ["the fixture has dangling references or duplicate keys"]
    seconds = time.monotonic() - start
    json.dump(
        {
            "ok": ok,
            "problems": problems,
            "seconds": seconds,
            "baseline_kb": baseline,
            "peak_kb": peak_rss_kb(),
        },
        sys.stdout,
    )


def measure(mode, path):
    argv = [sys.executable, os.path.abspath(__file__), "--child", mode, path]
    proc = subprocess.run(argv, check=False, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{mode} of {path} failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument(
        "--sizes",
        type=float,
        nargs="+",
        default=[50, 500],
        metavar="MB",
        help="fixture sizes in MB (default: 50 500)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="verifications per archive (median)")
    parser.add_argument(
        "--max-ratio",
        type=float,
        default=1.5,
        help="largest peak RSS over smallest allowed (default: 1.5)",
    )
    parser.add_argument("--dir", help="where to write the archives (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the archives")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    if len(set(args.sizes)) < 2:
        parser.error("--sizes needs at least two different sizes: the result is their ratio")

    workdir = tempfile.mkdtemp(prefix="edms-verify-bench-", dir=args.dir)
    rows = []
    try:
        for index, size in enumerate(sorted(args.sizes)):
            start = time.monotonic()
            path, fixture_size, objects, media = write_archive(workdir, size, index)
            written = time.monotonic() - start
            runs = [measure("verify", path) for _run in range(args.repeat)]
            copy = copy_fixture(path, os.path.join(workdir, f"fixture{index}"))
            fixture_runs = [measure("fixture", copy) for _run in range(args.repeat)]
            bad = [run for run in runs + fixture_runs if not run["ok"]]
            if bad:
                print(f"{path} does not verify: {bad[0]['problems']}", file=sys.stderr)
                return 1
            seconds = statistics.median(run["seconds"] for run in runs)
            rows.append(
                {
                    "fixture_mb": fixture_size / MB,
                    "objects": objects,
                    "media": media,
                    "archive_mb": os.path.getsize(path) / MB,
                    "write_s": written,
                    "verify_s": seconds,
                    "mb_per_s": fixture_size / MB / seconds,
                    "baseline_mb": statistics.median(run["baseline_kb"] for run in runs) / 1024,
                    "peak_mb": statistics.median(run["peak_kb"] for run in runs) / 1024,
                    "fixture_peak_mb": statistics.median(run["peak_kb"] for run in fixture_runs)
                    / 1024,
                }
            )
    finally:
        if args.keep:
            print(f"archives kept in {workdir}")
        else:
            shutil.rmtree(workdir)

    header = (
        "fixture MB",
        "objects",
        "media files",
        "archive MB",
        "write s",
        "verify s",
        "MB/s",
        "start RSS MB",
        "peak RSS MB",
        "fixture only",
    )
    print(" | ".join(f"{title:>12}" for title in header))
    for row in rows:
        values = (
            f"{row['fixture_mb']:.1f}",
            f"{row['objects']:,}",
            f"{row['media']:,}",
            f"{row['archive_mb']:.1f}",
            f"{row['write_s']:.1f}",
            f"{row['verify_s']:.1f}",
            f"{row['mb_per_s']:.1f}",
            f"{row['baseline_mb']:.1f}",
            f"{row['peak_mb']:.1f}",
            f"{row['fixture_peak_mb']:.1f}",
        )
        print(" | ".join(f"{value:>12}" for value in values))
    ratio = rows[-1]["peak_mb"] / rows[0]["peak_mb"]
    fixture_ratio = rows[-1]["fixture_peak_mb"] / rows[0]["fixture_peak_mb"]
    print(f"peak RSS, largest over smallest: {ratio:.2f} (limit {args.max_ratio})")
    print(f"fixture pass alone (a plain file, metadata without members): {fixture_ratio:.2f}")
    return 0 if ratio <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
