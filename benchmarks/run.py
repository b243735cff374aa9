"""The benchmark harness: the collection against what an operator would do by hand.

    .venv/bin/python benchmarks/run.py --scale small --repeat 3

For each scale it seeds the demo stack's live database and media with a
synthetic EDMS dataset (dataset.py: users, documents with one media file each,
versions, workflows, steps, audit entries), then measures, both sides
alternately, --repeat times each (``dumpdata`` and ``loaddata``
--by-hand-repeat times if given, or not at all with --skip-by-hand), and
reports medians and ratios:

- backup: the collection's ``archive_create`` (fixture, media, metadata,
  ``pg_dump``, verification) against ``manage.py dumpdata`` to a file plus a
  zip of it and the media (``python -m zipfile -c``, in the backend), and
  against ``pg_dump -Fc`` alone (the floor for a logical dump);
- verification (``archive_verify``) of the collection's archive, in MB/s of
  archive and of fixture;
- encryption at rest: a backup encrypted (``archive_create`` with
  ``encrypt_to``: verified, encrypted, read back) against the plain backup of
  the same run, and the verification of the encrypted archive with its key
  against the plain one's; ``age -r`` and ``age -d`` on the same archive for
  reference;
- restore into a separate database (edms_bench_restore), freshly migrated:
  the collection's load (the one every restore, rehearsal and fixture
  rollback runs: one transaction, counts and primary keys checked) against
  ``manage.py flush`` + ``manage.py loaddata`` of the same fixture, and
  against ``pg_restore`` of a ``pg_dump -Fc`` of the same database into an
  empty one; the restored content's per-table digests must equal the live
  database's;
- rollback of the live database and media from the safety snapshot (the
  collection's archive) with ``archive_rollback``, given the archive's
  sha256 and the proof of a first verification of it on this host (a
  check-mode run before, not measured), as playbooks/rollback.yml and the
  restore role give them (so not verified again), against ``pg_restore
  --single-transaction --clean`` of the same dump by hand;
- copies of the collection's archive: to a directory (``archive_copy``:
  the bytes copied to the partial name, then verified in full there and
  compared with the source's sha256 before the rename) against ``cp`` and
  ``sha256sum`` by hand; and to an S3-compatible bucket on loopback (moto in
  server mode, tests/s3server.py: ``archive_bucket``, upload then read back
  and compare) against boto3's ``upload_file`` alone;
- the maintenance window: ``playbooks/restore.yml`` of the collection's
  archive, confirmed, end to end on the demo inventory, timed from the first
  of the demo project's containers stopping (its kill, stop or die event,
  ``docker events``) to the last started again, against an operator's
  careful sequence by hand on the same data: ``pg_dump -Fc`` of the live
  database, ``pg_restore --single-transaction --clean`` of it, then a count
  of every table (one psql run); the whole playbook's time is reported
  beside it, and the live content must equal the archive's after both;
- a no-op preflight, end to end through ``ansible-playbook``.

Memory: the peak RSS of the module process on the host (its own, as a small
process that starts it sees it: see PEAK), and
the peak of the backend (or, for pg_restore, db) container's cgroup:
the process that does the work inside it (VmHWM, sampled every 0.2 s) and
the container's anonymous memory above what it held just before.

The modules run as Ansible runs them on the managed host, one Python process
each with the arguments in a file, without ansible-playbook's own start-up
(which the preflight row includes). Before the first scale the live state is
saved with ``archive_create``; at the end it is put back with the
collection's rollback, so the demo stack holds what it held before.

With --skip-by-hand the two slow hand-made sides (``dumpdata`` + zip,
``flush`` + ``loaddata``) are left out: the collection is still measured
against the ``pg_dump`` and ``pg_restore`` floors, and the restored content
still checked, which makes several runs per side at the large scale fit in
an hour. The targets against the hand-made sides are then reported as not
measured.

Results are printed and written to --results (default benchmarks/RESULTS.md):
one section per scale, replaced when the same scale runs again. Exit 1 when a
measured side fails or when restored content differs.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

# dataset puts this checkout's collection on the import path: it comes first.
from dataset import MB, ROOT, write_documents

# isort: split
from ansible_collections.edms.backup.plugins.module_utils._backend import migrations
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_rehearse import (
    Rehearsal,
)
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_rollback import rollback
from ansible_collections.edms.backup.plugins.module_utils._format import age
from ansible_collections.edms.backup.plugins.module_utils._format.archive import FIXTURE, METADATA
from restore_memory import DATABASE, PROJECT, Sampler

sys.path.insert(0, ROOT)
from tests.s3server import client as s3_client
from tests.s3server import s3_server

COLLECTIONS = os.path.join(ROOT, "collections")
BIN = os.path.dirname(sys.executable)
CONTENT_STATE = os.path.join(ROOT, "tests", "content_state.py")
RESULTS = os.path.join(ROOT, "benchmarks", "RESULTS.md")
MODULE_PROJECT = {"project_dir": PROJECT["project_dir"], "compose_files": PROJECT["compose_files"]}
EXCLUDES = ["contenttypes", "auth.permission", "sessions", "admin.logentry"]

# documents per scale; every document brings 20 versions, 10 workflows of 6
# steps and 3 participants, 20 audit entries and one 1 KiB media file
# (111 objects), and 3,000 bytes of text per version (95 KB of fixture).
SCALES = {
    "small": 90,
    "medium": 2000,
    "large": 10000,
}
VERSION_TEXT = 3000

TARGETS = {
    "backup": 20.0,  # dumpdata + zip over the collection's backup, at least
    "restore": 50.0,  # flush + loaddata over the collection's load, at least
    "backup_pg": 2.0,  # the collection's backup over pg_dump -Fc, at most
    "restore_pg": 2.5,  # the collection's load over pg_restore, at most
    "rollback": 1.2,  # the collection's rollback over pg_restore, at most
    "window": 3.0,  # restore.yml's window over the sequence by hand, at most
    "verify_mb_s": 100.0,  # MB of archive per second, at least
    "preflight_s": 20.0,  # seconds through ansible-playbook, at most
}

# pg_dump and pg_restore as the database owner in the db container, as an
# operator runs them; the credentials stay in the container.
PG_DUMP = 'exec pg_dump -Fc -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$1"'
PG_RESTORE_LIVE = (
    "exec pg_restore --single-transaction --clean --if-exists --no-owner --exit-on-error"
    ' -U "$POSTGRES_USER" -d "$POSTGRES_DB" "$1"'
)
PG_RESTORE_INTO = (
    "exec pg_restore --single-transaction --no-owner --exit-on-error"
    ' -U "$POSTGRES_USER" -d "$2" "$1"'
)
DUMPDATA = (
    "set -e; mkdir -p -m 700 /tmp/edms-bench-dumpdata; cd /tmp/edms-bench-dumpdata;"
    " python /app/manage.py dumpdata --natural-foreign --all"
    + "".join(f" -e {label}" for label in EXCLUDES)
    + ' -o database_backup.json; python -m zipfile -c backup.zip database_backup.json "$1";'
    " ls -l backup.zip"
)


def now():
    return time.monotonic()


def docker(*argv, check=True):
    proc = subprocess.run(["docker", *argv], capture_output=True, text=True, check=False)
    if check and proc.returncode:
        raise SystemExit(f"docker {' '.join(argv[:3])}... failed: {proc.stderr.strip()}")
    return proc


# The peak RSS of a command on the host, measured by a small Python process
# that starts it and waits for it: the peak the kernel reports for a child
# started straight from this harness includes this harness's own (a vfork
# and exec carry the parent's peak into the child's), and this harness grows
# with the scale. Prints "peak KiB seconds" to the file named first; exits
# with the command's status.
PEAK = """
import os, sys, time
started = time.monotonic()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_pid, status, usage = os.wait4(pid, 0)
seconds = time.monotonic() - started
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss} {seconds}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_of(argv, rss_file, **popen):
    """(returncode, seconds, peak RSS MB) of argv, run through PEAK; the
    seconds are the command's own, without PEAK's start."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(rss_file)
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", PEAK, rss_file, *argv], **popen)
    proc.wait()
    try:
        with open(rss_file, encoding="ascii") as handle:
            kib, seconds = handle.read().split()
    except (OSError, ValueError):
        raise SystemExit(f"{argv[0]} was not measured (status {proc.returncode})") from None
    return proc.returncode, float(seconds), int(kib) / 1024


def run_module(name, args):
    """(result, seconds, peak RSS MB of the module process) of one module run."""
    path = os.path.join(ROOT, "plugins", "modules", name + ".py")
    with tempfile.TemporaryDirectory(prefix="edms-bench-module-") as tmp:
        args_file = os.path.join(tmp, "args.json")
        with open(args_file, "w", encoding="utf-8") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
        env = dict(os.environ, PYTHONPATH=COLLECTIONS)
        with open(os.path.join(tmp, "out"), "w+b") as out:
            returncode, seconds, rss = peak_of(
                [sys.executable, path, args_file],
                os.path.join(tmp, "peak"),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
            out.seek(0)
            text = out.read().decode("utf-8", "replace")
    try:
        result = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit(f"{name} printed no result: {text[-2000:]}") from None
    if result.get("failed") or returncode:
        raise SystemExit(f"{name} failed: {result.get('msg')}")
    return result, seconds, rss


class Stack:
    """The demo stack's containers, the separate database and the live content."""

    def __init__(self):
        self.locate()

    def locate(self):
        """The containers, found again: a playbook may have recreated one
        (restore.yml's storage step recreates the backend when it changes the
        compose file)."""
        self.session = Rehearsal(dict(PROJECT))
        self.session.locate()
        self.backend = self.session.backend.container_id
        self.db = self.session.db.container_id
        self.pids = {
            "backend": self.container_pid(self.backend),
            "db": self.container_pid(self.db),
        }

    @staticmethod
    def container_pid(container):
        return int(docker("inspect", "-f", "{{.State.Pid}}", container).stdout)

    def sampler(self, tag, container="backend"):
        sampler = Sampler(self.pids[container], tag)
        sampler.start()
        return sampler

    def exec(self, container, *argv, env=None):
        flags = [f"--env={key}={value}" for key, value in (env or {}).items()]
        return docker("exec", *flags, getattr(self, container), *argv)

    def content(self, database=None):
        """{"tables": {table: [count, md5]}, "media": {path: sha256}} (tests/content_state.py)."""
        with open(CONTENT_STATE, encoding="utf-8") as handle:
            script = handle.read()
        env = {"POSTGRES_DB": database} if database else None
        out = self.exec("backend", "python", "-c", script, env=env).stdout
        return json.loads(out.strip().splitlines()[-1])

    def fresh_database(self, migrate=True):
        """The separate database, dropped if left over, created (and migrated)."""
        self.session.prepare_database()
        if migrate:
            request = {"settings": None, "database": DATABASE}
            self.session.backend_call(migrations, "migrate_main", request, "migrate")

    def drop_database(self):
        self.session.drop_database()


MODEL_LABELS = (
    "import json, django\n"
    "django.setup()\n"
    "from django.apps import apps\n"
    "print(json.dumps([m._meta.label_lower for m in apps.get_models(include_auto_created=True)]))\n"
)


def seed(stack, archive):
    """The live database and media replaced by the archive's, with the collection's
    own rollback (fixture method: the dataset has no pg_dump). The dataset holds
    only some of the application's models: every other table is emptied too
    (reset_models), so that the live data is the dataset's alone."""
    labels = json.loads(stack.exec("backend", "python", "-c", MODEL_LABELS).stdout.split("\n")[-2])
    params = {**PROJECT, "archive": archive, "token": None, "method": "fixture"}
    params["reset_models"] = labels
    params.pop("database")
    rollback(params)


def backup_collection(stack, directory, encrypt_to=()):
    sampler = stack.sampler("EDMS-BACKUP-REPORT")
    args = {**MODULE_PROJECT, "backup_dir": directory, "label": "benchmark", "pgdump": True}
    if encrypt_to:
        args["encrypt_to"] = list(encrypt_to)
    try:
        result, seconds, rss = run_module("archive_create", args)
    finally:
        sample = sampler.finish()
    return {
        "seconds": seconds,
        "host_rss_mb": rss,
        **sample,
        "archive": result["archive"],
        "sha256": result["sha256"],
    }


def backup_dumpdata(stack, _directory):
    sampler = stack.sampler("dumpdata")
    started = now()
    try:
        out = stack.exec(
            "backend", "sh", "-c", DUMPDATA, "dumpdata", PROJECT["media_dir_container"]
        ).stdout
    finally:
        seconds = now() - started
        sample = sampler.finish()
    stack.exec("backend", "rm", "-rf", "/tmp/edms-bench-dumpdata")
    size = int(out.split()[4]) if out.split() else 0
    return {"seconds": seconds, "host_rss_mb": None, **sample, "size": size}


def backup_pgdump(stack, _directory):
    sampler = stack.sampler("pg_dump", container="db")
    started = now()
    try:
        stack.exec("db", "sh", "-c", PG_DUMP, "pg_dump", "/tmp/edms-bench.pgdump")
    finally:
        seconds = now() - started
        sample = sampler.finish()
    return {"seconds": seconds, "host_rss_mb": None, **sample}


def verify_collection(_stack, archive, decryption_key=None):
    args = {"archive": archive}
    if decryption_key:
        args["decryption_key"] = decryption_key
    result, seconds, rss = run_module("archive_verify", args)
    if not result.get("verification", result).get("ok", True):
        raise SystemExit(f"the benchmark archive does not verify: {result}")
    return {"seconds": seconds, "host_rss_mb": rss}


def copy_collection(archive, sha256, destination):
    """cp to the partial name (the transfer), then archive_copy verifies and renames."""
    name = os.path.basename(archive)
    started = now()
    subprocess.run(["cp", archive, os.path.join(destination, f".{name}.partial")], check=True)
    copied = now() - started
    result, seconds, rss = run_module(
        "archive_copy",
        {
            "backup_dir": destination,
            "name": name,
            "sha256": sha256,
            "destination": "bench",
            "source_host": "bench",
            "source_path": archive,
        },
    )
    if not result.get("copied"):
        raise SystemExit(f"archive_copy put no copy in place: {result}")
    for suffix in ("", ".status.json"):
        os.unlink(os.path.join(destination, name + suffix))
    return {"seconds": copied + seconds, "host_rss_mb": rss}


def copy_by_hand(archive, sha256, destination):
    target = os.path.join(destination, os.path.basename(archive))
    started = now()
    subprocess.run(["cp", archive, target], check=True)
    out = subprocess.run(["sha256sum", target], capture_output=True, text=True, check=True)
    seconds = now() - started
    if out.stdout.split()[0] != sha256:
        raise SystemExit("cp made a copy with another sha256")
    os.unlink(target)
    return {"seconds": seconds}


def bucket_collection(archive, sha256, server):
    name = os.path.basename(archive)
    result, seconds, rss = run_module(
        "archive_bucket",
        {
            "bucket": "bench",
            "prefix": "bench",
            "endpoint_url": server["endpoint_url"],
            "region": server["region"],
            "access_key": server["access_key"],
            "secret_key": server["secret_key"],
            "name": name,
            "sha256": sha256,
            "source_host": "bench",
            "src": archive,
        },
    )
    if not result.get("copied"):
        raise SystemExit(f"archive_bucket put no copy in the bucket: {result}")
    s3_client(server).delete_object(Bucket="bench", Key=f"bench/{name}")
    return {"seconds": seconds, "host_rss_mb": rss}


def bucket_upload_alone(archive, server):
    s3 = s3_client(server)
    key = "bench/by-hand.zip"
    started = now()
    s3.upload_file(archive, "bench", key)
    seconds = now() - started
    s3.delete_object(Bucket="bench", Key=key)
    return {"seconds": seconds}


def measure_copies(archive, sha256, workdir, repeat):
    destination = os.path.join(workdir, "copies")
    os.makedirs(destination, mode=0o700)
    runs = alternate(
        repeat,
        [
            ("collection", lambda: copy_collection(archive, sha256, destination)),
            ("cp + sha256sum", lambda: copy_by_hand(archive, sha256, destination)),
        ],
    )
    ours_s = median(runs["collection"], "seconds")
    rows = [
        row(
            "copy",
            "collection (to a directory: archive_copy, verified there)",
            runs["collection"],
            ours_s,
        ),
        row("copy", "cp + sha256sum", runs["cp + sha256sum"], ours_s),
    ]
    with s3_server() as server:
        s3_client(server).create_bucket(Bucket="bench")
        runs = alternate(
            repeat,
            [
                ("collection", lambda: bucket_collection(archive, sha256, server)),
                ("upload_file", lambda: bucket_upload_alone(archive, server)),
            ],
        )
    ours_s = median(runs["collection"], "seconds")
    rows += [
        row(
            "copy",
            "collection (to a bucket: archive_bucket, read back)",
            runs["collection"],
            ours_s,
        ),
        row("copy", "boto3 upload_file alone", runs["upload_file"], ours_s),
    ]
    shutil.rmtree(destination, ignore_errors=True)
    return rows


def by_command(argv):
    """The seconds of one command (the age command, the by-hand reference)."""
    started = now()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return {"seconds": now() - started, "host_rss_mb": None}


def measure_encryption(stack, archive, workdir, repeat, plain):
    """Encryption at rest: a backup encrypted (archive_create, encrypt_to)
    against the plain backup of this run, and the verification of the
    encrypted archive with its key against the plain archive's; the age
    command on the same archive for reference. plain: the plain backup's
    and verification's median seconds."""
    identity = age.X25519PrivateKey.generate()
    key, recipient = age.identity_text(identity), age.recipient_of(identity)
    sealed_dir = os.path.join(workdir, "sealed")
    os.makedirs(sealed_dir, mode=0o700)
    made = []

    def ours():
        run = backup_collection(stack, sealed_dir, encrypt_to=[recipient])
        made.append(run.pop("archive"))
        run.pop("sha256")
        return run

    by_hand = os.path.join(workdir, "by-hand.zip.age")
    runs = alternate(
        repeat,
        [
            ("collection", ours),
            ("age -r", lambda: by_command(["age", "-r", recipient, "-o", by_hand, archive])),
        ],
    )
    rows = [
        row(
            "encrypted",
            "backup, encrypted (archive_create, encrypt_to: verified, encrypted, read back)",
            runs["collection"],
            plain["backup"],
        ),
        row("encrypted", "age -r on the plain archive (the command alone)", runs["age -r"], None),
    ]
    sealed = made[-1]
    with open(os.path.join(workdir, "age.key"), "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    runs = alternate(
        repeat,
        [
            ("collection", lambda: verify_collection(stack, sealed, decryption_key=key)),
            (
                "age -d",
                lambda: by_command(["age", "-d", "-i", handle.name, "-o", os.devnull, by_hand]),
            ),
        ],
    )
    rows += [
        row(
            "encrypted",
            "verify, encrypted (archive_verify, decryption_key)",
            runs["collection"],
            plain["verify"],
        ),
        row("encrypted", "age -d to /dev/null (the command alone)", runs["age -d"], None),
    ]
    shutil.rmtree(sealed_dir, ignore_errors=True)
    os.unlink(by_hand)
    os.unlink(handle.name)
    return rows


def restore_collection(stack, archive, metadata):
    stack.fresh_database()
    sampler = stack.sampler(DATABASE)
    started = now()
    try:
        report = stack.session.load(archive, metadata, database=DATABASE)
    finally:
        seconds = now() - started
        sample = sampler.finish()
    sample["peak_rss_mb"] = max(sample["peak_rss_mb"], report["peak_rss_kb"] / 1024)
    return {"seconds": seconds, "host_rss_mb": None, **sample}


LOADDATA = (
    "set -e; cd /app; python manage.py flush --noinput;"
    ' EDMS_RESTORE_IN_PROGRESS=1 python manage.py loaddata "$1"'
)


def restore_loaddata(stack, fixture):
    # A migrated database, as loaddata needs; flush is part of the measured
    # side, as an operator runs it on the database to restore. The restore
    # marker keeps the demo's m2m receiver from adding audit rows, as it does
    # for the collection's load.
    stack.fresh_database()
    sampler = stack.sampler("loaddata")
    started = now()
    try:
        out = stack.exec(
            "backend", "sh", "-c", LOADDATA, "loaddata", fixture, env={"POSTGRES_DB": DATABASE}
        ).stdout
    finally:
        seconds = now() - started
        sample = sampler.finish()
    return {"seconds": seconds, "host_rss_mb": None, **sample, "said": out.strip()}


def restore_pgrestore(stack, dump):
    stack.fresh_database(migrate=False)
    sampler = stack.sampler("pg_restore", container="db")
    started = now()
    try:
        stack.exec("db", "sh", "-c", PG_RESTORE_INTO, "pg_restore", dump, DATABASE)
    finally:
        seconds = now() - started
        sample = sampler.finish()
    return {"seconds": seconds, "host_rss_mb": None, **sample}


def rollback_proof(archive):
    """The proof of a first verification of the archive on this host, as
    playbooks/rollback.yml's check before the gate (a check-mode run of
    archive_rollback, not measured) or the restore role's safety backup
    (archive_create with make_proof) gives it to the put-back."""
    result, _seconds, _rss = run_module(
        "archive_rollback", {**MODULE_PROJECT, "archive": archive, "_ansible_check_mode": True}
    )
    if not result.get("proof"):
        raise SystemExit(f"no proof for the rollback: {result.get('proof_not_made')}")
    return result["sha256"], result["proof"]


def rollback_collection(stack, archive, proven):
    # As the restore role rolls back to its safety backup: its sha256 and the
    # proof of its verification on this host (not verified again unless the
    # proof does not hold).
    sha256, proof = proven
    sampler = stack.sampler("pg_restore", container="db")
    args = {**MODULE_PROJECT, "archive": archive, "archive_sha256": sha256, "method": "pgdump"}
    try:
        result, seconds, rss = run_module("archive_rollback", {**args, "proof": proof})
        if "proven" not in result["verification"]:
            raise SystemExit(f"the backup's proof did not hold for the rollback: {proof}")
    finally:
        sample = sampler.finish()
    return {"seconds": seconds, "host_rss_mb": rss, **sample}


def rollback_pgrestore(stack, dump):
    sampler = stack.sampler("pg_restore", container="db")
    started = now()
    try:
        stack.exec("db", "sh", "-c", PG_RESTORE_LIVE, "pg_restore", dump)
    finally:
        seconds = now() - started
        sample = sampler.finish()
    return {"seconds": seconds, "host_rss_mb": None, **sample}


# The counts an operator checks after pg_restore: every table of the
# application's schema, one psql run (\\gexec runs each generated query).
COUNTS_BY_HAND = (
    "SELECT format('SELECT %L AS t, count(*) FROM %I', tablename, tablename)"
    " FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename \\gexec"
)
COUNTS = 'exec psql -qAt -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$1"'
DEMO_HOST = "edms-demo"
DEMO_PROJECT = "edms-demo"
# Where the demo inventory's restore puts its safety backups (edms_archive_dir).
DEMO_ARCHIVES = os.path.join(ROOT, "demo", "run", "edms-archives")


class Events:
    """The demo project's services stopping and starting while a playbook
    runs: the engine's event stream (the Docker SDK's, filtered by the engine
    to those events), read by a thread from before the playbook starts. (The
    engine keeps only its last 256 events for a later ``--since`` query, and
    every exec of a run makes three.)"""

    def __init__(self):
        import docker  # pylint: disable=import-outside-toplevel

        self.client = docker.APIClient()
        self.stream = self.client.events(
            decode=True,
            filters={
                "type": "container",
                "label": [f"com.docker.compose.project={DEMO_PROJECT}"],
                "event": ["kill", "stop", "die", "start"],
            },
        )
        self.seen = []
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        try:
            for event in self.stream:
                self.seen.append(event)
        except Exception:  # pylint: disable=broad-exception-caught
            pass  # the stream closed by stop()

    def stop(self):
        time.sleep(1)  # the last events on their way
        self.stream.close()
        self.thread.join(10)
        self.client.close()

    def window(self):
        """Seconds from the first service stopping (its kill, stop or die) to
        the last one started again."""
        # The services' own containers, not the one-off ones the collection
        # runs its work in while the application is stopped.
        events = [
            e
            for e in self.seen
            if e.get("Actor", {}).get("Attributes", {}).get("com.docker.compose.oneoff") != "True"
        ]
        stops = [e["timeNano"] for e in events if e.get("status") in ("kill", "stop", "die")]
        starts = [e["timeNano"] for e in events if e.get("status") == "start"]
        if not stops or not starts or max(starts) < min(stops):
            seen = sorted({(e.get("status"), e["Actor"]["Attributes"].get("name")) for e in events})
            raise SystemExit(f"no stop and start of the services seen, only: {seen}")
        return (max(starts) - min(stops)) / 1e9


def playbook_argv(name, *variables):
    """ansible-playbook of playbooks/name on the demo inventory, with -e
    variables, and the freshness check a warning: what earlier runs and tests
    left in the demo's backup directory is no part of a measurement."""
    argv = [
        os.path.join(BIN, "ansible-playbook"),
        "-i",
        os.path.join(ROOT, "inventories", "demo"),
        os.path.join(ROOT, "playbooks", name),
    ]
    for variable in (*variables, "preflight_freshness_severity=warning"):
        argv += ["-e", variable]
    return argv


def window_collection(stack, archive):
    """playbooks/restore.yml end to end (confirmed, as an operator runs it on
    the demo inventory): the whole playbook's seconds, and the window the
    services were out of service in (Events)."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    argv = playbook_argv(
        "restore.yml", f"edms_archive={archive}", f"edms_restore_confirm={DEMO_HOST}"
    )
    before = set(os.listdir(DEMO_ARCHIVES)) if os.path.isdir(DEMO_ARCHIVES) else set()
    events = Events()
    started = now()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="edms-bench-window-") as tmp,
            open(os.path.join(tmp, "out"), "w+b") as out,
        ):
            # The peak RSS of the playbook and of every module it ran on the host.
            returncode, _seconds, rss = peak_of(
                argv,
                os.path.join(tmp, "peak"),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
            out.seek(0)
            said = out.read().decode("utf-8", "replace")
    finally:
        seconds = now() - started
        events.stop()
        stack.locate()
    if returncode:
        # Its safety backup stays: the rollback point of a failed restore.
        raise SystemExit(f"restore.yml failed: {said[-3000:]}")
    window = events.window()
    # The restore's safety backup, made for the measurement, removed.
    for name in set(os.listdir(DEMO_ARCHIVES)) - before:
        path = os.path.join(DEMO_ARCHIVES, name)
        if os.path.isfile(path):
            os.unlink(path)
    return {"seconds": window, "playbook_seconds": seconds, "host_rss_mb": rss}


def window_by_hand(stack, _archive):
    """An operator's careful sequence on the same data: pg_dump -Fc of the
    live database, pg_restore --single-transaction --clean of it, then the
    counts of every table."""
    dump = "/tmp/edms-bench-window.pgdump"
    counts = "/tmp/edms-bench-counts.sql"
    stack.exec("db", "sh", "-c", 'printf "%s\\n" "$1" > "$2"', "sh", COUNTS_BY_HAND, counts)
    sampler = stack.sampler("pg_restore", container="db")
    started = now()
    try:
        stack.exec("db", "sh", "-c", PG_DUMP, "pg_dump", dump)
        stack.exec("db", "sh", "-c", PG_RESTORE_LIVE, "pg_restore", dump)
        out = stack.exec("db", "sh", "-c", COUNTS, "psql", counts).stdout
    finally:
        seconds = now() - started
        sample = sampler.finish()
        stack.exec("db", "rm", "-f", dump, counts)
    if len(out.splitlines()) < 5:
        raise SystemExit(f"the counts by hand printed too little: {out}")
    return {"seconds": seconds, "playbook_seconds": None, "host_rss_mb": None, **sample}


def preflight(_stack):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    argv = playbook_argv("preflight.yml")
    started = now()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    seconds = now() - started
    if proc.returncode:
        raise SystemExit(f"preflight failed: {proc.stdout[-3000:]}")
    return {"seconds": seconds, "host_rss_mb": None}


def alternate(repeat, sides, fewer=None):
    """Run each side `repeat` times, the order turned round every repetition;
    fewer: {side name: runs}, for a side run only that many times, spread
    over the repetitions (one run: in the last)."""
    fewer = fewer or {}
    runs = {name: [] for name, _call in sides}
    for repetition in range(repeat):
        order = sides if repetition % 2 == 0 else list(reversed(sides))
        for name, call in order:
            times = fewer.get(name, repeat)
            if (repetition + 1) * times // repeat == repetition * times // repeat:
                continue
            run = call()
            print(f"  {name}: {short(run)}", file=sys.stderr, flush=True)
            runs[name].append(run)
    return runs


def checked_sides(repeat, sides, check, problems, fewer=None):
    """alternate(), each run followed by check(side name): a problem or None,
    added to problems."""

    def checked(name, call):
        def run():
            result = call()
            problem = check(name)
            if problem:
                problems.append(problem)
            return result

        return run

    return alternate(repeat, [(name, checked(name, call)) for name, call in sides], fewer)


def short(run):
    return ", ".join(
        f"{key} {value:.2f}" if isinstance(value, float) else f"{key} {value}"
        for key, value in run.items()
        if key not in ("archive", "said", "stopped_at_limit")
    )


def median(runs, key):
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


BY_HAND = ("dumpdata + zip", "flush + loaddata")


def by_hand_or_not(by_hand, sides):
    """sides, without the slow hand-made ones (BY_HAND) unless by_hand."""
    return [(name, call) for name, call in sides if by_hand or name not in BY_HAND]


def row(operation, side, runs, baseline=None):
    """A table row; runs None: a side not measured in this run."""
    runs = runs or []
    seconds = median(runs, "seconds")
    return {
        "operation": operation,
        "side": side,
        "runs": len(runs),
        "seconds": seconds,
        "ratio": seconds / baseline if baseline and seconds is not None else None,
        "host_rss_mb": median(runs, "host_rss_mb"),
        "peak_rss_mb": median(runs, "peak_rss_mb"),
        "anon_mb": median(runs, "anon_above_idle_mb"),
    }


def measure_scale(stack, scale, repeat, workdir, by_hand=True, by_hand_repeat=None):
    """The rows and facts of one scale (by_hand: with dumpdata and loaddata,
    by_hand_repeat times each if given, else repeat times)."""
    documents = SCALES[scale]
    fewer = dict.fromkeys(BY_HAND, by_hand_repeat) if by_hand_repeat else None
    started = now()
    archive, fixture_bytes, objects, media = write_documents(
        workdir, documents, f"_{scale}", version_text=VERSION_TEXT
    )
    print(
        f"{scale}: {objects:,} objects, {media:,} media files, "
        f"fixture {fixture_bytes / MB:.1f} MB; seeding",
        file=sys.stderr,
        flush=True,
    )
    seed(stack, archive)
    os.unlink(archive)
    live = stack.content()
    facts = {
        "scale": scale,
        "documents": documents,
        "objects": objects,
        "media": media,
        "fixture_mb": fixture_bytes / MB,
        "seed_seconds": now() - started,
        "problems": [],
    }

    backups = os.path.join(workdir, scale)
    os.makedirs(backups, mode=0o700)
    print(f"{scale}: backup", file=sys.stderr, flush=True)
    made = []

    def ours():
        run = backup_collection(stack, backups)
        made.append((run.pop("archive"), run.pop("sha256")))
        return run

    runs = alternate(
        repeat,
        by_hand_or_not(
            by_hand,
            [
                ("collection", ours),
                ("dumpdata + zip", lambda: backup_dumpdata(stack, backups)),
                ("pg_dump -Fc", lambda: backup_pgdump(stack, backups)),
            ],
        ),
        fewer,
    )
    for old, _sha256 in made[:-1]:
        os.unlink(old)
    archive, sha256 = made[-1]
    facts["archive_mb"] = os.path.getsize(archive) / MB
    with zipfile.ZipFile(archive) as handle:
        metadata = json.loads(handle.read(METADATA))
        facts["fixture_in_archive_mb"] = handle.getinfo(FIXTURE).file_size / MB
    ours_s = median(runs["collection"], "seconds")
    rows = [
        row(
            "backup",
            "collection (archive_create, verification included)",
            runs["collection"],
            ours_s,
        ),
        row("backup", "manage.py dumpdata + zip", runs.get("dumpdata + zip"), ours_s),
        row("backup", "pg_dump -Fc", runs["pg_dump -Fc"], ours_s),
    ]

    print(f"{scale}: verify", file=sys.stderr, flush=True)
    runs = alternate(repeat, [("collection", lambda: verify_collection(stack, archive))])
    verify = row("verify", "collection (archive_verify)", runs["collection"])
    verify["mb_s"] = facts["archive_mb"] / verify["seconds"]
    verify["fixture_mb_s"] = facts["fixture_in_archive_mb"] / verify["seconds"]
    rows.append(verify)

    print(f"{scale}: encryption", file=sys.stderr, flush=True)
    plain = {"backup": ours_s, "verify": verify["seconds"]}
    rows += measure_encryption(stack, archive, workdir, repeat, plain)

    print(f"{scale}: copies", file=sys.stderr, flush=True)
    rows += measure_copies(archive, sha256, workdir, repeat)

    print(f"{scale}: restore into {DATABASE}", file=sys.stderr, flush=True)
    dump = "/tmp/edms-bench.pgdump"
    stack.exec("db", "sh", "-c", PG_DUMP, "pg_dump", dump)
    fixture_dir = "/tmp/edms-bench-fixture"
    stack.exec("backend", "rm", "-rf", fixture_dir)
    stack.exec("backend", "mkdir", "-m", "700", fixture_dir)
    from ansible_collections.edms.backup.plugins.module_utils._deployment.load import put_fixture

    fixture = put_fixture(stack.session.containers, stack.backend, archive, fixture_dir)
    restored = {}

    def restored_tables(name):
        tables = stack.content(DATABASE)["tables"]
        restored[name] = tables == live["tables"]
        if not restored[name]:
            differ = sorted(t for t in live["tables"] if tables.get(t) != live["tables"][t])
            return f"restore by {name}: tables differ: {differ}"
        return None

    runs = checked_sides(
        repeat,
        by_hand_or_not(
            by_hand,
            [
                ("collection", lambda: restore_collection(stack, archive, metadata)),
                ("flush + loaddata", lambda: restore_loaddata(stack, fixture)),
                ("pg_restore", lambda: restore_pgrestore(stack, dump)),
            ],
        ),
        restored_tables,
        facts["problems"],
        fewer,
    )
    stack.exec("backend", "rm", "-rf", fixture_dir)
    stack.drop_database()
    ours_s = median(runs["collection"], "seconds")
    rows += [
        row("restore", "collection (load into a separate database)", runs["collection"], ours_s),
        row("restore", "manage.py flush + loaddata", runs.get("flush + loaddata"), ours_s),
        row("restore", "pg_restore into an empty database", runs["pg_restore"], ours_s),
    ]
    facts["restored_equal"] = restored

    print(f"{scale}: rollback", file=sys.stderr, flush=True)
    proven = rollback_proof(archive)

    def live_content(name):
        return None if stack.content() == live else f"rollback by {name}: live content differs"

    runs = checked_sides(
        repeat,
        [
            ("collection", lambda: rollback_collection(stack, archive, proven)),
            ("pg_restore", lambda: rollback_pgrestore(stack, dump)),
        ],
        live_content,
        facts["problems"],
    )
    stack.exec("db", "rm", "-f", dump)
    ours_s = median(runs["collection"], "seconds")
    rows += [
        row(
            "rollback", "collection (archive_rollback, pg_dump member)", runs["collection"], ours_s
        ),
        row("rollback", "pg_restore --single-transaction --clean", runs["pg_restore"], ours_s),
    ]

    print(f"{scale}: maintenance window (restore.yml)", file=sys.stderr, flush=True)
    runs = checked_sides(
        repeat,
        [
            ("collection", lambda: window_collection(stack, archive)),
            ("by hand", lambda: window_by_hand(stack, archive)),
        ],
        live_content,
        facts["problems"],
    )
    ours_s = median(runs["collection"], "seconds")
    whole = [dict(run, seconds=run["playbook_seconds"]) for run in runs["collection"]]
    rows += [
        row(
            "window",
            "collection (restore.yml: services stopped to started again)",
            runs["collection"],
            ours_s,
        ),
        row(
            "window",
            "by hand (pg_dump -Fc, pg_restore --single-transaction --clean, counts)",
            runs["by hand"],
            ours_s,
        ),
        row("window", "collection: the whole restore.yml, for reference", whole, ours_s),
    ]

    print(f"{scale}: preflight", file=sys.stderr, flush=True)
    runs = alternate(repeat, [("ansible-playbook", lambda: preflight(stack))])
    rows.append(
        row("preflight", "ansible-playbook playbooks/preflight.yml", runs["ansible-playbook"])
    )
    shutil.rmtree(backups, ignore_errors=True)
    facts["seconds"] = now() - started
    return rows, facts


def fmt(value, pattern="{:.1f}", empty="—"):
    return empty if value is None else pattern.format(value)


def verdicts(rows, facts):
    """Each target: (what, measured, met), met None when not measured."""
    by = {(r["operation"], r["side"].split(" (")[0]): r for r in rows}
    out = []
    for what, key, target in (
        (
            f"backup ≥ {TARGETS['backup']:.0f} x faster than dumpdata + zip",
            ("backup", "manage.py dumpdata + zip"),
            "backup",
        ),
        (
            f"restore ≥ {TARGETS['restore']:.0f} x faster than flush + loaddata",
            ("restore", "manage.py flush + loaddata"),
            "restore",
        ),
    ):
        ratio = by[key]["ratio"]
        if ratio is None:
            out.append((what, "not measured (--skip-by-hand)", None))
        else:
            out.append((what, f"{ratio:.1f} x", ratio >= TARGETS[target]))
    for what, key, target in (
        (
            f"backup ≤ {TARGETS['backup_pg']} x pg_dump -Fc",
            ("backup", "pg_dump -Fc"),
            "backup_pg",
        ),
        (
            f"restore ≤ {TARGETS['restore_pg']} x pg_restore into an empty database",
            ("restore", "pg_restore into an empty database"),
            "restore_pg",
        ),
        (
            f"rollback ≤ {TARGETS['rollback']} x pg_restore --single-transaction --clean",
            ("rollback", "pg_restore --single-transaction --clean"),
            "rollback",
        ),
        (
            f"maintenance window ≤ {TARGETS['window']:.0f} x the sequence by hand",
            ("window", "by hand"),
            "window",
        ),
    ):
        times = 1 / by[key]["ratio"]
        out.append((what, f"{times:.2f} x", times <= TARGETS[target]))
    verify = by[("verify", "collection")]
    out.append(
        (
            "verification ≥ 100 MB/s of archive",
            f"{verify['mb_s']:.1f} MB/s of archive ({verify['fixture_mb_s']:.1f} of fixture)",
            verify["mb_s"] >= TARGETS["verify_mb_s"],
        )
    )
    pre = by[("preflight", "ansible-playbook playbooks/preflight.yml")]["seconds"]
    out.append(
        ("preflight through ansible-playbook < 20 s", f"{pre:.1f} s", pre < TARGETS["preflight_s"])
    )
    equal = all(facts["restored_equal"].values()) and not facts["problems"]
    out.append(
        (
            "restored content: per-table digests equal to the live database's",
            "equal" if equal else "; ".join(facts["problems"]) or "differ",
            equal,
        )
    )
    return out


def section(rows, facts, command, machine):
    lines = [
        f"<!-- scale:{facts['scale']} -->",
        f"## {facts['scale']}: {facts['objects']:,} objects, {facts['media']:,} media files",
        "",
        f"Measured {machine['date']} with `{command}` on {machine['summary']}. "
        f"Fixture {facts['fixture_mb']:.1f} MB, archive {facts['archive_mb']:.1f} MB; "
        f"{facts['documents']:,} documents. The whole scale took "
        f"{facts['seconds'] / 60:.1f} min. Medians of the runs; the ratio is the row's time "
        "over the collection's (in the encrypted rows, over the collection's plain backup or"
        " verification of this run: what encryption costs).",
        "",
        "| operation | side | runs | seconds | over the collection's | module RSS on the host, MB"
        " | worker's peak RSS in the container, MB | container memory above idle, MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        extra = ""
        if r["operation"] == "verify":
            extra = f" ({r['mb_s']:.1f} MB/s of archive, {r['fixture_mb_s']:.1f} of fixture)"
        lines.append(
            f"| {r['operation']} | {r['side']}{extra} | {r['runs']} | {fmt(r['seconds'], '{:.2f}')}"
            f" | {fmt(r['ratio'], '{:.2f}')} | {fmt(r['host_rss_mb'], '{:.0f}')}"
            f" | {fmt(r['peak_rss_mb'] or None, '{:.0f}')} | {fmt(r['anon_mb'], '{:.0f}')} |"
        )
    lines += ["", "| target | measured | met |", "| --- | --- | --- |"]
    for what, measured, met in verdicts(rows, facts):
        verdict = "—" if met is None else "yes" if met else "NO"
        lines.append(f"| {what} | {measured} | {verdict} |")
    lines += ["", f"<!-- /scale:{facts['scale']} -->"]
    return "\n".join(lines)


HEADER = """# Benchmark results

Written by `benchmarks/run.py` (see benchmarks/README.md); one section per
scale, replaced when that scale runs again. What each row measures is in the
harness's docstring. The notes below the sections are written by hand and stay.
"""


NOTES = "<!-- notes -->"


def write_results(path, text, scale):
    """Replace the scale's section in the results file, or add it (before the
    notes written by hand, which start at NOTES)."""
    try:
        with open(path, encoding="utf-8") as handle:
            current = handle.read()
    except FileNotFoundError:
        current = HEADER
    start, end = f"<!-- scale:{scale} -->", f"<!-- /scale:{scale} -->"
    if start in current and end in current:
        before, rest = current.split(start, 1)
        after = rest.split(end, 1)[1]
        current = before + text + after
    elif NOTES in current:
        before, after = current.split(NOTES, 1)
        current = before + text + "\n\n" + NOTES + after
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(current)


def machine_facts(stack):
    with open("/proc/meminfo", encoding="utf-8") as handle:
        mem_kb = int(handle.readline().split()[1])
    engine = docker("version", "-f", "{{.Server.Version}}").stdout.strip()
    pg = stack.exec("db", "postgres", "--version").stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "summary": f"{os.cpu_count()} cores, {mem_kb / (1 << 20):.0f} GiB, "
        f"{platform.platform()}, Python {platform.python_version()}, Docker {engine}, {pg}",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--scale", nargs="+", choices=sorted(SCALES), default=["small"])
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument("--results", default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument(
        "--skip-by-hand",
        action="store_true",
        help="leave out dumpdata + zip and flush + loaddata (the slow sides)",
    )
    parser.add_argument(
        "--by-hand-repeat",
        type=int,
        metavar="N",
        help="runs of each of those two sides, if fewer than --repeat (they take minutes each)",
    )
    parser.add_argument(
        "--dir", help="a directory, made if missing, for the work dir (default: the system's temp)"
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.by_hand_repeat is not None and not 1 <= args.by_hand_repeat <= args.repeat:
        parser.error("--by-hand-repeat must be from 1 to --repeat")
    if args.by_hand_repeat and args.skip_by_hand:
        parser.error("--by-hand-repeat and --skip-by-hand: choose one")
    command = "benchmarks/run.py " + " ".join(sys.argv[1:])

    if args.dir:
        try:
            os.makedirs(args.dir, exist_ok=True)
        except OSError as exc:
            parser.error(f"--dir {args.dir}: {exc.strerror}")
    stack = Stack()
    machine = machine_facts(stack)
    workdir = tempfile.mkdtemp(prefix="edms-bench-", dir=args.dir)
    failed = False
    try:
        print("saving the live state", file=sys.stderr, flush=True)
        saved, _seconds, _rss = run_module(
            "archive_create",
            {**MODULE_PROJECT, "backup_dir": workdir, "label": "pre-benchmark", "pgdump": True},
        )
        try:
            for scale in args.scale:
                rows, facts = measure_scale(
                    stack,
                    scale,
                    args.repeat,
                    workdir,
                    by_hand=not args.skip_by_hand,
                    by_hand_repeat=args.by_hand_repeat,
                )
                text = section(rows, facts, command, machine)
                print(text)
                write_results(args.results, text, scale)
                failed = failed or bool(facts["problems"])
        finally:
            print("putting the live state back", file=sys.stderr, flush=True)
            run_module(
                "archive_rollback",
                {**MODULE_PROJECT, "archive": saved["archive"], "method": "pgdump"},
            )
    finally:
        stack.drop_database()
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
