"""Peak memory in the backend container: this collection's load against loaddata.

For each fixture size, writes a synthetic EDMS-like archive (dataset.py),
then, in the demo stack's backend container, loads its fixture into a
separate, freshly migrated database twice, alternately:

- ``collection``: this collection's load (Deployment.load, the code every
  restore, rehearsal and rollback runs: one transaction, counts and primary
  keys compared before commit);
- ``loaddata``: ``manage.py loaddata`` of the same fixture file, through
  ``call_command`` in the same container, into the same kind of database
  (with the restore marker set, so that both do the same work); its counts
  are checked against the archive's afterwards.

While each runs, the harness samples from the host every 0.2 s the peak RSS
(VmHWM) of the loading process and the anonymous memory of the container's
cgroup (above what it held just before). The separate database is dropped
at the end.

With --memory-limit (e.g. 2g) the backend container runs under that memory
limit (``docker update``) while both load, as a deployment with that limit
would; a load the kernel kills for it is reported as killed, with the time
and memory it had reached. The backend is recreated by Compose afterwards,
which takes the limit away again.

Exit 1 when a load fails (other than loaddata killed under --memory-limit),
when loaddata's counts differ from the archive's, or when the collection's
peak RSS at the largest size exceeds the one at the smallest by more than
--max-ratio.

    .venv/bin/python benchmarks/restore_memory.py --sizes 50 500
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

# dataset puts this checkout's collection on the import path: it comes first.
from dataset import MB, ROOT, check_sizes, size_parser, write_archive

# isort: split
from ansible_collections.edms.backup.plugins.module_utils._backend import migrations, setup
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_rehearse import (
    Rehearsal,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.load import put_fixture
from ansible_collections.edms.backup.plugins.module_utils._format.archive import METADATA
from ansible_collections.edms.backup.plugins.module_utils._platform.django import with_backend
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import ExecError

DATABASE = "edms_bench_restore"
PROJECT = {
    "project_dir": os.path.join(ROOT, "demo", "run"),
    "compose_files": ["docker-compose.prod.yml"],
    "backend_service": "backend",
    "db_service": "db",
    "backend_python": "python",
    "django_settings_module": None,
    "media_dir_container": "/app/storage/media",
    "allow_migration_mismatch": False,
    "database": DATABASE,
}

# loaddata as an operator runs it (manage.py loaddata <file>), in the same
# process setup as the collection's scripts, reporting its own peak RSS. The
# restore marker keeps the demo's m2m receiver from adding audit rows, as it
# does for the collection's load.
LOADDATA_SCRIPT = with_backend(
    r"""
import json, os, resource, time
from ansible_collections.edms.backup.plugins.module_utils._backend.setup import setup
request = setup()
from django.core.management import call_command
os.environ["EDMS_RESTORE_IN_PROGRESS"] = "1"
started = time.monotonic()
call_command("loaddata", request["fixture"], verbosity=0)
print(json.dumps({
    "seconds": round(time.monotonic() - started, 3),
    "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
}))
""",
    setup,
)


def memory_cgroup(pid):
    """The memory cgroup directory of a host process and the memory.stat key
    of its anonymous memory (cgroup v2 or v1)."""
    with open(f"/proc/{pid}/cgroup") as handle:
        lines = [line.rstrip("\n").split(":", 2) for line in handle]
    for _id, controllers, path in lines:
        if "memory" in controllers.split(","):
            return os.path.join("/sys/fs/cgroup/memory", path.lstrip("/")), "total_rss"
    for _id, controllers, path in lines:
        if controllers == "":
            return os.path.join("/sys/fs/cgroup", path.lstrip("/")), "anon"
    raise SystemExit(f"no memory cgroup for process {pid}")


def read_stat(directory, key):
    with open(os.path.join(directory, "memory.stat")) as handle:
        for line in handle:
            name, value = line.split()
            if name == key:
                return int(value)
    raise SystemExit(f"no {key} in {directory}/memory.stat")


def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class Sampler(threading.Thread):
    """Peak VmHWM of the container's processes whose command line holds `tag`,
    and peak anonymous memory of the container's cgroup; stops such a
    process after `limit` seconds when given."""

    def __init__(self, container_pid, tag, limit=None):
        super().__init__(daemon=True)
        self.cgroup, self.key = memory_cgroup(container_pid)
        self.tag = tag.encode()
        self.limit = limit
        self.idle = read_stat(self.cgroup, self.key)
        self.peak_anon = self.idle
        self.peak_rss_kb = 0
        self.stopped_at_limit = False
        self.started = time.monotonic()
        self.done = threading.Event()

    def processes(self):
        with open(os.path.join(self.cgroup, "cgroup.procs")) as handle:
            pids = [int(line) for line in handle if line.strip()]
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    if self.tag in handle.read():
                        yield pid
            except (FileNotFoundError, ProcessLookupError):
                continue

    def sample(self):
        self.peak_anon = max(self.peak_anon, read_stat(self.cgroup, self.key))
        for pid in self.processes():
            self.peak_rss_kb = max(self.peak_rss_kb, status_kb(pid, "VmHWM"))
            if self.limit and time.monotonic() - self.started > self.limit:
                os.kill(pid, signal.SIGTERM)
                self.stopped_at_limit = True

    def run(self):
        self.sample()
        while not self.done.wait(0.2):
            self.sample()

    def finish(self):
        self.done.set()
        self.join()
        return {
            "peak_rss_mb": self.peak_rss_kb / 1024,
            "anon_above_idle_mb": (self.peak_anon - self.idle) / MB,
            "stopped_at_limit": self.stopped_at_limit,
        }


def with_report(sample, seconds, reported_kb):
    """The sample with the load's own report; the process's peak RSS is at least
    what it reported (a load shorter than the sampling interval may be missed)."""
    if reported_kb:
        sample["peak_rss_mb"] = max(sample["peak_rss_mb"], reported_kb / 1024)
    return {**sample, "seconds": seconds, "reported_kb": reported_kb}


class Bench:
    def __init__(self, loaddata_limit=None, memory_limit=None):
        self.memory_limit = memory_limit
        self.session = Rehearsal(dict(PROJECT))
        self.session.locate()
        backend = self.session.backend.container_id
        inspect = ["docker", "inspect", "-f", "{{.State.Pid}}", backend]
        self.container_pid = int(subprocess.check_output(inspect, text=True))
        self.loaddata_limit = loaddata_limit
        if memory_limit:
            limit = ["--memory", memory_limit, "--memory-swap", memory_limit]
            subprocess.run(["docker", "update", *limit, backend], check=True, capture_output=True)

    def fresh_database(self):
        """The separate database, dropped if left over, created and migrated."""
        self.session.prepare_database()
        request = {"settings": None, "database": DATABASE}
        self.session.backend_call(migrations, "migrate_main", request, "migrate")

    def measure(self, side, archive, metadata):
        self.fresh_database()
        if side == "collection":
            sampler = Sampler(self.container_pid, DATABASE)
            sampler.start()
            try:
                report = self.session.load(archive, metadata, database=DATABASE)
            finally:
                sample = sampler.finish()
            return with_report(sample, report["seconds"], report["peak_rss_kb"])
        containers, backend = self.session.containers, self.session.backend.container_id
        scratch = "/tmp/edms-bench-loaddata"
        containers.exec(backend, ["rm", "-rf", scratch])
        containers.exec(backend, ["mkdir", "-m", "700", scratch])
        try:
            fixture = put_fixture(containers, backend, archive, scratch)
            request = {"settings": None, "database": DATABASE, "fixture": fixture}
            sampler = Sampler(self.container_pid, DATABASE, self.loaddata_limit)
            sampler.start()
            started = time.monotonic()
            try:
                answer = self.session.run_program(LOADDATA_SCRIPT, request, "loaddata")
            except ExecError as exc:
                if sampler.stopped_at_limit:
                    answer = {"seconds": None, "peak_rss_kb": None}
                elif self.memory_limit and "(exit 137)" in str(exc):
                    # SIGKILL: the kernel's OOM killer, at the container's limit.
                    answer = {"seconds": None, "peak_rss_kb": None, "killed": True}
                    killed_after = time.monotonic() - started
                else:
                    raise
            finally:
                sample = sampler.finish()
            if answer.get("killed"):
                sample["killed_after"] = killed_after
        finally:
            containers.exec(backend, ["rm", "-rf", scratch], check=False)
        if not sample["stopped_at_limit"] and not sample.get("killed_after"):
            counted = self.session.count_against(metadata, database=DATABASE)
            if counted.get("differences"):
                raise SystemExit(f"loaddata's counts differ: {counted['differences']}")
        return with_report(sample, answer["seconds"], answer["peak_rss_kb"])

    def close(self):
        self.session.drop_database()
        if self.memory_limit:
            compose = ["docker", "compose", "--project-directory", PROJECT["project_dir"]]
            for name in PROJECT["compose_files"]:
                compose += ["-f", os.path.join(PROJECT["project_dir"], name)]
            subprocess.run(
                [*compose, "up", "-d", "--wait", "--force-recreate", "--no-deps", "backend"],
                check=True,
                capture_output=True,
            )


def summary(size, side, runs, limit):
    """One table row: medians over the runs; a bound when loaddata was stopped,
    and the time it was killed at when the memory limit killed it."""
    stopped = any(run["stopped_at_limit"] for run in runs)
    killed = [run["killed_after"] for run in runs if run.get("killed_after")]
    finished = [run["seconds"] for run in runs if run["seconds"] is not None]
    if killed:
        seconds = f"killed by the memory limit after {statistics.median(killed):.0f}"
    elif stopped:
        seconds = f"> {limit:.0f}"
    else:
        seconds = f"{statistics.median(finished):.1f}"
    return {
        **size,
        "side": side,
        "seconds": seconds,
        "bound": "≥ " if stopped or killed else "",
        "peak_rss_mb": statistics.median(run["peak_rss_mb"] for run in runs),
        "anon_mb": statistics.median(run["anon_above_idle_mb"] for run in runs),
    }


def main():
    parser = size_parser(__doc__, "loads per side")
    parser.add_argument(
        "--version-text",
        type=int,
        default=24576,
        metavar="BYTES",
        help="text per document version (default 24576: about 5 KB per object, so"
        " that loaddata of 500 MB ends in minutes; 0 gives the demo's small objects)",
    )
    parser.add_argument(
        "--loaddata-limit",
        type=float,
        metavar="SECONDS",
        help="stop loaddata after this long; its peak is then a lower bound (default: none)",
    )
    parser.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="run the backend under this memory limit (docker update, e.g. 2g) for the loads",
    )
    parser.add_argument("--dir", help="where to write the archives (default: a temp dir)")
    args = parser.parse_args()
    check_sizes(parser, args)

    bench = Bench(loaddata_limit=args.loaddata_limit, memory_limit=args.memory_limit)
    workdir = tempfile.mkdtemp(prefix="edms-restore-bench-", dir=args.dir)
    rows = []
    try:
        for index, size_mb in enumerate(sorted(args.sizes)):
            path, fixture_bytes, objects, _media = write_archive(
                workdir, size_mb, index, version_text=args.version_text
            )
            with zipfile.ZipFile(path) as archive:
                metadata = json.loads(archive.read(METADATA))
            size = {"fixture_mb": fixture_bytes / MB, "objects": objects}
            runs = {"collection": [], "loaddata": []}
            for repetition in range(args.repeat):
                order = ["collection", "loaddata"]
                if repetition % 2:
                    order.reverse()
                for side in order:
                    run = bench.measure(side, path, metadata)
                    print(f"{size['fixture_mb']:.1f} MB {side}: {run}", file=sys.stderr)
                    runs[side].append(run)
            rows.extend(
                summary(size, side, runs[side], args.loaddata_limit)
                for side in ("collection", "loaddata")
            )
            os.unlink(path)
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        "| fixture MB | objects | load | seconds | peak RSS of the load, MB"
        " | container anonymous memory above idle, MB |"
    )
    print("| ---: | ---: | --- | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['fixture_mb']:.1f} | {row['objects']:,} | {row['side']} | {row['seconds']}"
            f" | {row['bound']}{row['peak_rss_mb']:.0f} | {row['bound']}{row['anon_mb']:.0f} |"
        )
    ours = [row for row in rows if row["side"] == "collection"]
    theirs = [row for row in rows if row["side"] == "loaddata"]
    ratio = ours[-1]["peak_rss_mb"] / ours[0]["peak_rss_mb"]
    print(f"collection, peak RSS largest over smallest: {ratio:.2f} (limit {args.max_ratio})")
    print(
        "loaddata, peak RSS largest over smallest: "
        f"{theirs[-1]['bound']}{theirs[-1]['peak_rss_mb'] / theirs[0]['peak_rss_mb']:.2f}"
    )
    print(
        "loaddata over collection at the largest size: "
        f"{theirs[-1]['bound']}{theirs[-1]['peak_rss_mb'] / ours[-1]['peak_rss_mb']:.1f}"
    )
    return 0 if ratio <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
