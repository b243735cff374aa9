"""The kill campaign: backups and restores of the demo stack killed at a random point.

Each run starts a real ``ansible-playbook`` of playbooks/backup.yml or
playbooks/restore.yml (an older archive, confirmed) and, after a seeded random
delay, kills one of:

- ``playbook``: the whole process group of ansible-playbook (SIGKILL: the
  controller dies);
- ``module``: the newest module process (a python running ``AnsiballZ_*``)
  below the playbook (SIGKILL); the playbook goes on with a failed task;
- ``exec``: the collection's program running inside the backend or the
  maintenance container (a ``python -c`` with a long program; SIGKILL);
- ``engine``: the Docker engine, stopped and started again as this machine
  runs it (systemd's docker unit, or dockerd as ``demo/bin/stack up`` starts
  it).

A module or exec kill with nothing of the kind running (after a short grace)
falls back to a playbook kill, and the record says so.

Then the recovery an operator would make: the next ordinary run (backup.yml
for a killed backup, restore.yml of the same archive for a killed restore),
up to three times; when a run fails and its message prints a recovery (a
stale lock and the unlock playbook that clears it, a playbook with its -e
variables), that recovery is run and recorded. Then the run is judged: the
content (every table's count and md5 computed in PostgreSQL, every media
file's sha256) must equal the state before the operation or, for a restore,
the older archive's; no lock, no maintenance container, no restore work
directory left; the backend healthy; every archive listed in the archive
directory verifies.

The plan is seeded: run i draws its delay from random.Random(f"{seed}-{i}"),
and its operation and kill target from a seeded round in which every target
comes once (see plan_run), so any prefix of len(targets) runs covers every
target. ``--dry-run`` prints the plan and touches nothing. Results: one JSON
line per run in --out, and a Markdown table (--table) built from every run
of the seed in that file.

Run it with the Python of the repository's virtualenv (its ansible-playbook
is used), from a checkout whose demo stack is up (demo/bin/stack up), as the
user that runs the stack (root, for the engine restart). See docs/testing.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import inspect
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

OPERATIONS = ("backup", "restore")
TARGETS = ("playbook", "module", "exec", "engine")
DEFAULT_SEED = "edms-kill-1"
# The CI subset: 4 runs, one round, every kill target once.
CI_SEED = "edms-kill-ci"
MIN_DELAY = 0.5
HOST = "edms-demo"
MAINTENANCE_LABEL = "io.edms-backup.maintenance"
BACKEND_CONTAINER = "edms_demo_backend"
DB_CONTAINER = "edms_demo_db"
LOCK_NAME = ".edms-backup.lock"
WORK_PREFIX = ".edms-restore-"
MEDIA_ROOT = "/app/storage/media"
# A collection program handed to python -c is the boot code and the backend
# modules' source: many kilobytes. Health checks and the maintenance
# container's waiter are a line or two.
LONG_PROGRAM = 1000
# The outcomes, in the table's order; "DATA LOST" and "UNRESOLVED" carry a reason.
OUTCOMES = (
    "before",
    "after",
    "before after recovery",
    "after after recovery",
    "before after operator action",
    "after after operator action",
    "UNRESOLVED",
    "DATA LOST",
)


# ---------------------------------------------------------------- the plan


def plan_run(seed, index, operations=OPERATIONS, targets=TARGETS):
    """Run index of the campaign seeded seed: {"i", "operation", "target", "fraction"}.

    Runs come in rounds of len(targets): a round is a seeded shuffle of the
    targets, so every round holds each target once. The operations turn
    with the round: in round r, the target at position j of the (unshuffled)
    list gets operations[(j + r) % len(operations)], so over len(operations)
    rounds every (operation, target) pair comes once. The fraction (of the
    operation's usual duration) at which the kill comes is drawn from
    random.Random(f"{seed}-{index}").
    """
    if not operations or not targets:
        raise ValueError("at least one operation and one kill target are needed")
    width = len(targets)
    round_index, position = divmod(index, width)
    order = list(range(width))
    random.Random(f"{seed}-round-{round_index}").shuffle(order)
    slot = order[position]
    rng = random.Random(f"{seed}-{index}")
    return {
        "i": index,
        "operation": operations[(slot + round_index) % len(operations)],
        "target": targets[slot],
        "fraction": round(rng.random(), 6),
    }


def make_plan(seed, runs, start=0, operations=OPERATIONS, targets=TARGETS):
    return [plan_run(seed, i, operations, targets) for i in range(start, start + runs)]


def delay_for(fraction, duration, minimum=MIN_DELAY):
    """The kill's delay in seconds: uniform in [minimum, duration] by fraction."""
    top = max(float(duration), minimum)
    return round(minimum + fraction * (top - minimum), 3)


def parse_choice(text, allowed, what):
    """A comma-separated list of allowed names, in the order given, no repeats."""
    chosen = []
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        if name not in allowed:
            raise ValueError("{} {!r} is not one of {}".format(what, name, ", ".join(allowed)))
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise ValueError(f"no {what} given")
    return tuple(chosen)


def parse_durations(text):
    """{"backup": 40.0, ...} from "backup=40,restore=95"."""
    durations = {}
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or name not in OPERATIONS:
            raise ValueError(f"duration {part!r}: expected operation=seconds")
        seconds = float(value)
        if seconds <= 0:
            raise ValueError(f"duration {part!r}: seconds must be positive")
        durations[name] = seconds
    return durations


def describe_plan(plan, durations):
    lines = []
    for run in plan:
        duration = durations.get(run["operation"])
        when = (
            "at {:.1f} s".format(delay_for(run["fraction"], duration))
            if duration
            else "at {:.0%} of the {} duration (not measured yet)".format(
                run["fraction"], run["operation"]
            )
        )
        lines.append(
            "run {:>4}  {:<8} kill {:<9} {}".format(run["i"], run["operation"], run["target"], when)
        )
    return lines


# ------------------------------------------------- the recovery a run prints


def failure_messages(text):
    """The msg of every failed task in ansible-playbook's output (JSON results);
    the whole text when none can be read."""
    messages = []
    decoder = json.JSONDecoder()
    for match in re.finditer(r"(?:FAILED!|failed:[^\n]*?) => ", text):
        try:
            result, _end = decoder.raw_decode(text, match.end())
        except ValueError:
            line = text[match.end() :].split("\n", 1)[0]
            messages.append(line)
            continue
        if not isinstance(result, dict):
            continue
        if isinstance(result.get("msg"), str):
            messages.append(result["msg"])
        for item in result.get("results") or []:
            if isinstance(item, dict) and isinstance(item.get("msg"), str):
                messages.append(item["msg"])
    return messages or [text]


_STRIP = ".,;:'\")"
VARIABLE = r"[A-Za-z_][A-Za-z0-9_]*"
# Names of variables taken from the text when they stand alone (key=value
# without -e): those the collection's messages print.
KNOWN_VARIABLES = ("restore_token", "edms_archive", "edms_restore_confirm")


def _variables(message):
    found = {}
    patterns = (
        rf"-e\s+({VARIABLE})=(\S+)",
        rf"\(({VARIABLE})=([^)\s]+)\)",
        r"\b({})=(\S+)".format("|".join(KNOWN_VARIABLES)),
    )
    for pattern in patterns:
        for name, value in re.findall(pattern, message):
            value = value.rstrip(_STRIP)
            if value and name not in found:
                found[name] = value
    return found


def parse_recovery(text):
    """The recoveries a failed run's output prints, in the order found:

    {"kind": "wait-lock"}: another operation holds the lock (wait for it);
    {"kind": "playbook", "playbook", "vars"}: a playbook of playbooks/ to run,
    with the -e variables (and an archive path) the message names (a stale
    lock names playbooks/unlock.yml, which clears it and records that);
    {"kind": "compose-up", "services"}: services to start with docker compose up.
    """
    found = []
    for message in failure_messages(text):
        if "another operation is running" in message:
            found.append({"kind": "wait-lock"})
        for playbook in dict.fromkeys(re.findall(r"playbooks/([A-Za-z0-9_.-]+\.yml)", message)):
            variables = _variables(message)
            if "edms_archive" not in variables and playbook in ("rollback.yml", "restore.yml"):
                archives = re.findall(r"(/[^\s'\"(),;]+\.zip)\b", message)
                if archives:
                    variables["edms_archive"] = archives[0]
            found.append({"kind": "playbook", "playbook": playbook, "vars": variables})
        compose_up = re.search(
            r"services (.+?) have no container to start; run 'docker compose up'", message
        )
        if compose_up:
            services = [s.strip() for s in compose_up.group(1).split(",") if s.strip()]
            found.append({"kind": "compose-up", "services": services})
    unique = []
    for item in found:
        if item not in unique:
            unique.append(item)
    return unique


# ---------------------------------------------------------------- judging


def outcome_of(
    operation, before, older, final, unresolved=None, problems=(), recovered=False, operator=False
):
    """The run's outcome: "before", "after" (a restore: the older archive's
    content), with " after recovery" when a printed recovery was needed or
    " after operator action" when the operator had to do more than it said;
    "UNRESOLVED: why" when the recovery did not get through or something is
    left behind; "DATA LOST: why" when it did and the content is neither."""
    if final is None:
        state = None
    elif final == before:
        state = "before"
    elif operation == "restore" and older is not None and final == older:
        state = "after"
    else:
        state = "neither"
    if unresolved:
        extra = "" if state in ("before", "after") else "; the content is neither before nor after"
        return f"UNRESOLVED: {unresolved}{extra}"
    if state == "neither":
        return "DATA LOST: " + content_difference(
            before, final, older if operation == "restore" else None
        )
    if state is None:
        return "UNRESOLVED: the content cannot be read"
    if problems:
        return "UNRESOLVED: " + "; ".join(problems)
    if operator:
        return state + " after operator action"
    return state + (" after recovery" if recovered else "")


def content_difference(before, final, older=None):
    """A short account of how final differs from before (and from older)."""
    parts = []
    for name, expected in (("before", before), ("the archive", older)):
        if expected is None:
            continue
        tables = sorted(
            table
            for table in set(expected["tables"]) | set(final["tables"])
            if expected["tables"].get(table) != final["tables"].get(table)
        )
        media = sorted(
            path
            for path in set(expected["media"]) | set(final["media"])
            if expected["media"].get(path) != final["media"].get(path)
        )
        parts.append(
            "vs {}: {} table(s) differ{} and {} media file(s)".format(
                name, len(tables), " (" + ", ".join(tables[:4]) + ")" if tables else "", len(media)
            )
        )
    return "; ".join(parts)


def outcome_bucket(outcome):
    return outcome.split(":", 1)[0]


# ------------------------------------------------------------ the table


def campaign_records(lines, seed=None):
    """(the newest campaign record of seed, its runs by index, newest kept)."""
    campaign, runs = None, {}
    for line in lines:
        line = line.strip()
        if not line:
            continue
        record = json.loads(line)
        if seed is not None and record.get("seed") != seed:
            continue
        if record.get("type") == "campaign":
            campaign = record
        elif record.get("type") == "run":
            runs[record["i"]] = record
    return campaign, [runs[i] for i in sorted(runs)]


def _count_cells(records):
    counts = {}
    for record in records:
        bucket = outcome_bucket(record["outcome"])
        counts[bucket] = counts.get(bucket, 0) + 1
    return counts


def render_table(records, command, durations=None):
    """The Markdown results: per (operation, kill target), per point, the runs
    that did not end clean, and the command line that reproduces them."""
    outcomes = list(OUTCOMES)
    for record in records:
        if outcome_bucket(record["outcome"]) not in outcomes:
            outcomes.append(outcome_bucket(record["outcome"]))
    shown = [o for o in outcomes if any(outcome_bucket(r["outcome"]) == o for r in records)]
    shown = shown or ["before", "after"]
    lines = [
        "# Kill campaign results",
        "",
        "Generated by `tests/faults/kill_campaign.py` (see docs/testing.md); do not edit.",
        "",
        "Reproduce with:",
        "",
        "```",
        command,
        "```",
        "",
    ]
    if durations:
        lines += [
            "Usual durations (the delays are drawn in [0.5 s, duration]): "
            + ", ".join(f"{op} {seconds:.0f} s" for op, seconds in sorted(durations.items())),
            "",
        ]
    lines += [
        "| operation | kill | runs | killed as drawn | fell back to playbook | "
        + " | ".join(shown)
        + " |",
        "| --- | --- | ---: | ---: | ---: | " + " | ".join("---:" for name in shown) + " |",
    ]
    groups = {}
    for record in records:
        groups.setdefault((record["operation"], record["target"]), []).append(record)
    order = {name: n for n, name in enumerate(OPERATIONS + TARGETS)}
    for key in sorted(groups, key=lambda k: (order.get(k[0], 99), order.get(k[1], 99))):
        group = groups[key]
        lines.append(_row(key[0], key[1], group, shown))
    lines.append(_row("**total**", "", records, shown))
    lines += [
        "",
        "## Where the kills came",
        "",
        "The last task ansible-playbook had printed when the kill came.",
        "",
        "| operation | point | kills | outcomes |",
        "| --- | --- | ---: | --- |",
    ]
    points = {}
    for record in records:
        points.setdefault(
            (record["operation"], record.get("point") or "(before the first task)"), []
        ).append(record)
    for (operation, point), group in sorted(points.items()):
        counts = _count_cells(group)
        text = ", ".join(f"{name} {counts[name]}" for name in outcomes if name in counts)
        lines.append(f"| {operation} | {_cell(point)} | {len(group)} | {text} |")
    bad = [r for r in records if outcome_bucket(r["outcome"]) in ("UNRESOLVED", "DATA LOST")]
    lines += ["", "## Runs that did not end in the state before or after", ""]
    if bad:
        for record in bad:
            lines.append(
                "- run {} ({} killed at {} s, {}): {}".format(
                    record["i"],
                    record["operation"],
                    record.get("delay"),
                    (record.get("killed") or {}).get("what", record["target"]),
                    _cell(record["outcome"]),
                )
            )
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row(operation, target, records, shown):
    counts = _count_cells(records)
    as_drawn = sum(1 for r in records if not (r.get("killed") or {}).get("fallback"))
    fallback = len(records) - as_drawn
    cells = [str(counts.get(name, 0)) for name in shown]
    return "| {} | {} | {} | {} | {} | {} |".format(
        operation, target, len(records), as_drawn, fallback, " | ".join(cells)
    )


def reproduce_command(args, durations):
    argv = [
        "python",
        "tests/faults/kill_campaign.py",
        "--runs",
        str(args.runs),
        "--seed",
        args.seed,
        "--operations",
        ",".join(args.operations),
        "--kills",
        ",".join(args.kills),
    ]
    if args.start:
        argv += ["--start", str(args.start)]
    if durations:
        argv += [
            "--durations",
            ",".join(f"{op}={seconds:g}" for op, seconds in sorted(durations.items())),
        ]
    if args.operator != "strict":
        argv += ["--operator", args.operator]
    return shlex.join(argv)


# ------------------------------------------------ processes on this host


def process_table(proc="/proc"):
    """{pid: (ppid, starttime, argv)} of the processes readable now."""
    table = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"{proc}/{name}/cmdline", "rb") as handle:
                raw = handle.read()
        except (OSError, IndexError):
            continue
        argv = [part.decode("utf-8", "replace") for part in raw.split(b"\0")[:-1]]
        try:
            table[int(name)] = (int(fields[1]), int(fields[19]), argv)
        except (IndexError, ValueError):
            continue
    return table


def descendants(table, root):
    """The pids below root (not root itself), by the ppid chain."""
    children = {}
    for pid, (ppid, _start, _argv) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, pending = set(), [root]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def is_python(argv):
    return bool(argv) and re.fullmatch(r"python[0-9.]*", os.path.basename(argv[0])) is not None


def newest_module(table, root):
    """(pid, module name) of the newest python running an AnsiballZ module below root, or None."""
    best = None
    for pid in descendants(table, root):
        _ppid, start, argv = table[pid]
        if not is_python(argv):
            continue
        names = [m for arg in argv[1:] for m in re.findall(r"AnsiballZ_(\w+)\.py", arg)]
        if names and (best is None or start > best[0]):
            best = (start, pid, names[0])
    return None if best is None else (best[1], best[2])


def choose_program(procs, own_pid, minimum=1000):
    """Inside a container: of procs [(pid, starttime, argv)], the newest
    ``python -c`` whose program is long (the collection's, not a health check
    nor the maintenance container's waiter), as (pid, what it runs) or None."""
    best = None
    for pid, start, argv in procs:
        if pid == own_pid or pid == 1 or len(argv) < 3 or argv[1] != "-c":
            continue
        name = argv[0].rsplit("/", 1)[-1]
        if not name.startswith("python"):
            continue
        program = argv[2]
        if len(program) < minimum or "time.sleep(3600)" in program:
            continue
        what = "python -c"
        for line in reversed(program.strip().splitlines()):
            if line.startswith("run("):
                what = line.split("'")[1] if "'" in line else line
                break
        if best is None or start > best[0]:
            best = (start, pid, what.rsplit(".", 1)[-1])
    return None if best is None else (best[1], best[2])


def exec_killer(kill=True):
    """The program ``docker exec <container> python -c`` runs to find (and
    kill) the collection's program in the container; it prints one JSON line."""
    driver = (
        "procs = []\n"
        "for name in os.listdir('/proc'):\n"
        "    if not name.isdigit():\n"
        "        continue\n"
        "    try:\n"
        "        with open('/proc/%s/stat' % name) as h:\n"
        "            start = int(h.read().rsplit(')', 1)[1].split()[19])\n"
        "        with open('/proc/%s/cmdline' % name, 'rb') as h:\n"
        "            argv = [a.decode('utf-8', 'replace') for a in h.read().split(b'\\0')[:-1]]\n"
        "    except (OSError, IndexError, ValueError):\n"
        "        continue\n"
        "    procs.append((int(name), start, argv))\n"
        f"chosen = choose_program(procs, os.getpid(), {LONG_PROGRAM})\n"
        "if chosen and KILL:\n"
        "    os.kill(chosen[0], signal.SIGKILL)\n"
        "print(json.dumps({'pid': chosen and chosen[0], 'program': chosen and chosen[1]}))\n"
    )
    return (
        "import json, os, signal\n"
        f"KILL = {bool(kill)!r}\n" + inspect.getsource(choose_program) + "\n" + driver
    )


# ------------------------------------------------------- the demo stack


def _conftest():
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from tests.integration import conftest

    return conftest


def docker(*argv, check=False, timeout=120):
    return subprocess.run(
        ["docker", *argv], capture_output=True, text=True, check=check, timeout=timeout
    )


def engine_answers():
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def container_state(name):
    """(running, health) of a container; (False, None) when it is not there."""
    out = docker(
        "inspect",
        "-f",
        "{{.State.Running}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
        name,
    )
    if out.returncode != 0:
        return False, None
    parts = out.stdout.split()
    return parts[:1] == ["true"], parts[1] if len(parts) > 1 else None


def wait_healthy(name, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        running, health = container_state(name)
        if running and health in (None, "healthy"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1)


def maintenance_containers(running_only=False):
    argv = ["ps", "-q", "--filter", f"label={MAINTENANCE_LABEL}"]
    if not running_only:
        argv.insert(1, "-a")
    return docker(*argv).stdout.split()


# What reading the content raises when the backend does not answer.
CONTENT_ERRORS = (AssertionError, ValueError, IndexError, subprocess.TimeoutExpired)


# The one failed check a recovery's backup of a half-replaced state may have.
MEDIA_MISSING = "file field values without their file under media/"


class Stack:
    """The demo deployment, as the integration tests reach it."""

    def __init__(self):
        self.c = _conftest()
        self.run_dir = self.c.RUN
        self.archive_dir = os.path.join(self.run_dir, "edms-archives")
        self.lock = os.path.join(self.run_dir, LOCK_NAME)
        self.verified = {}

    def check_up(self):
        proc = self.c.compose("ps", "--format", "json", check=False)
        if proc.returncode != 0:
            said = proc.stderr.strip()[-300:]
            raise SystemExit(
                f"kill campaign: cannot ask Compose about the demo stack ({said});"
                " is it up? Run demo/bin/stack up"
            )
        running = set()
        for line in proc.stdout.splitlines():
            line = line.strip()
            if not line:
                continue
            items = json.loads(line)
            for item in items if isinstance(items, list) else [items]:
                if item.get("State") == "running":
                    running.add(item.get("Service"))
        missing = {"db", "backend"} - running
        if missing:
            raise SystemExit(
                "kill campaign: the demo stack is not up ({} not running):"
                " run demo/bin/stack up".format(", ".join(sorted(missing)))
            )

    def leftovers(self):
        """What a finished operation must not leave: lock, maintenance containers, work dirs."""
        found = []
        if os.path.exists(self.lock):
            found.append(f"the lock {self.lock} is there")
        left = maintenance_containers()
        if left:
            found.append("maintenance container(s) left: " + ", ".join(left))
        if container_state(BACKEND_CONTAINER)[0]:
            out = self.c.backend("ls", "-a", MEDIA_ROOT, check=False).stdout.split()
            work = [name for name in out if name.startswith(WORK_PREFIX)]
            if work:
                found.append("restore work directory left in the media root: " + ", ".join(work))
        return found

    def content(self):
        return self.c.content()

    def clear(self):
        """With --keep-going, after a run that did not resolve: the record of
        a restore that died recovered (playbooks/recover.yml), the backend
        started, the lock's holder ended and the lock removed, maintenance
        containers removed. A restore work directory is left alone (it may
        hold the only copy of media). What was done."""
        done = []
        held = None
        try:
            with open(self.lock, encoding="utf-8") as handle:
                held = json.load(handle)
        except (OSError, ValueError):
            pass
        if isinstance(held, dict) and "journal" in held:
            # The record of a restore that died: its documented recovery,
            # never a backend started over data that may be partly replaced.
            proc = subprocess.run(
                self.playbook_argv(
                    "recover.yml", {"edms_restore_confirm": HOST, "edms_recover_stale": "true"}
                ),
                env=self.playbook_env(),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            done.append(f"playbooks/recover.yml (rc {proc.returncode})")
        if not container_state(BACKEND_CONTAINER)[0]:
            self.compose_up()
            done.append("docker compose up -d --wait")
        if os.path.exists(self.lock):
            try:
                with open(self.lock, encoding="utf-8") as handle:
                    held = json.load(handle)
                pid, token = int(held.get("pid")), str(held.get("token"))
                # The lock's own holder carries the lock's token in its environment.
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    if f"EDMS_BACKUP_LOCK={token}".encode() in handle.read().split(b"\0"):
                        os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError, TypeError, AttributeError):
                pass
            os.remove(self.lock)
            done.append("lock removed")
        for container in maintenance_containers():
            docker("rm", "-f", container)
            done.append("maintenance container removed")
        return done

    def activity(self):
        self.c.manage("simulate_activity", "--iterations", "1", "--interval", "0")

    def archives(self):
        """(every archive listed, the interrupted backups listed)."""
        if not os.path.isdir(self.archive_dir):
            return [], []
        rc, result = self.c.run_module("archive_info", {"backup_dir": self.archive_dir})
        if rc != 0:
            raise RuntimeError("archive_info failed: {}".format(result.get("msg")))
        return result.get("archives") or [], result.get("partials") or []

    def unverifiable(self, kept=None):
        """Listed archives that do not verify (each checked once while unchanged).
        A recovery's backup of what was live when the run died in the middle of
        replacing it may not verify (the archive's media beside the database as
        it was): recorded as failed with the recovery's reason and no other
        problem than MEDIA_MISSING, it is evidence kept on purpose
        (roles/restore/tasks/safety_backup.yml); its name goes to ``kept`` (a
        list), not among the problems."""
        bad = []
        archives, _partials = self.archives()
        for archive in archives:
            path = archive["path"]
            verification = archive.get("verification") or {}
            problems = verification.get("problems") or []
            if (
                kept is not None
                and (archive.get("reason") or "").startswith("before recovering the ")
                and verification.get("state") == "failed"
                and problems
                and all(p.startswith(MEDIA_MISSING) for p in problems)
            ):
                kept.append(archive["name"])
                continue
            try:
                stat = os.stat(path)
                key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            except OSError:
                key = None
            if key is not None and self.verified.get(path) == key:
                continue
            rc, result = self.c.run_module("archive_verify", {"archive": path})
            if rc == 0 and result.get("ok"):
                if key is not None:
                    self.verified[path] = key
            else:
                bad.append(
                    "{} does not verify: {}".format(archive["name"], result.get("msg", "")[:200])
                )
        return bad

    def make_older(self, directory):
        project = {"project_dir": self.run_dir, "compose_files": ["docker-compose.prod.yml"]}
        rc, made = self.c.run_module("archive_create", {**project, "backup_dir": directory})
        if rc != 0:
            raise SystemExit(
                "kill campaign: the older archive could not be made: {}".format(made.get("msg"))
            )
        return made["archive"]

    def compose_up(self):
        return self.c.compose("up", "-d", "--wait", check=False, timeout=600)

    def playbook_argv(self, name, variables):
        argv = [
            os.path.join(self.c.BIN, "ansible-playbook"),
            "-i",
            os.path.join(ROOT, "inventories", "demo"),
            os.path.join(ROOT, "playbooks", name),
        ]
        for key, value in variables.items():
            argv += ["-e", f"{key}={value}"]
        return argv

    def playbook_env(self):
        env = self.c.ansible_env()
        env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
        env["ANSIBLE_NOCOLOR"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        return env


def operation_vars(operation, older):
    if operation == "restore":
        return {"edms_archive": older, "edms_restore_confirm": HOST}
    return {}


def start_playbook(stack, name, variables, log_path):
    log = open(log_path, "ab")  # noqa: SIM115 - kept open for the child
    log.write(("$ " + shlex.join(stack.playbook_argv(name, variables)) + "\n").encode())
    log.flush()
    proc = subprocess.Popen(
        stack.playbook_argv(name, variables),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=stack.playbook_env(),
        cwd=ROOT,
        start_new_session=True,
    )
    proc.log_handle = log
    return proc


def wait_playbook(proc, timeout):
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        rc = proc.wait()
    proc.log_handle.close()
    return rc


def run_playbook_logged(stack, name, variables, log_path, timeout):
    """Run a playbook to its end, its output appended to log_path: (rc, that
    output, seconds)."""
    started = time.monotonic()
    offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    proc = start_playbook(stack, name, variables, log_path)
    rc = wait_playbook(proc, timeout)
    with open(log_path, "rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", "replace")
    return rc, text, round(time.monotonic() - started, 1)


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


def last_task(log_path):
    try:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    tasks = re.findall(r"^TASK \[(.+?)\]", text, re.MULTILINE)
    return tasks[-1] if tasks else None


def poll(find, grace):
    deadline = time.monotonic() + grace
    while True:
        found = find()
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def kill_module(proc, grace):
    found = poll(lambda: newest_module(process_table(), proc.pid), grace)
    if not found:
        return None
    pid, module = found
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return {"what": "module", "pid": pid, "module": module}


def kill_exec(grace):
    script = exec_killer(kill=True)

    def attempt():
        candidates = maintenance_containers(running_only=True)
        if container_state(BACKEND_CONTAINER)[0]:
            candidates.append(BACKEND_CONTAINER)
        for container in candidates:
            out = docker("exec", "-u", "0", container, "python", "-c", script, timeout=30)
            if out.returncode != 0:
                continue
            try:
                answer = json.loads(out.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                continue
            if answer.get("pid"):
                return {"what": "exec", "container": container, **answer}
        return None

    return poll(attempt, grace)


# ---------------------------------------------------- the Docker engine


def engine_pid():
    try:
        with open("/var/run/docker.pid", encoding="ascii") as handle:
            pid = int(handle.read().strip())
        with open(f"/proc/{pid}/comm", encoding="ascii") as handle:
            if handle.read().strip() == "dockerd":
                return pid
    except (OSError, ValueError):
        pass
    for pid, (_ppid, _start, argv) in process_table().items():
        if argv and os.path.basename(argv[0]) == "dockerd":
            return pid
    return None


def under_systemd():
    try:
        with open("/proc/1/comm", encoding="ascii") as handle:
            return handle.read().strip() == "systemd"
    except OSError:
        return False


def process_ended(pid):
    """Whether pid has ended. A dockerd this harness started again is its
    child: once it ends it stays a zombie until reaped, which happens here."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            state = handle.read().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True
    if state in ("Z", "X"):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return True
    return False


def restart_engine(timeout=120):
    """Stop the Docker engine and start it again as this machine runs it; a record."""
    record = {"what": "engine"}
    backend_was_running = container_state(BACKEND_CONTAINER)[0]
    started = time.monotonic()
    if under_systemd():
        record["how"] = "systemctl restart docker"
        subprocess.run(["systemctl", "restart", "docker"], check=False, timeout=timeout)
    else:
        pid = engine_pid()
        if pid is None:
            raise RuntimeError("no dockerd process found to restart")
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [a.decode() for a in handle.read().split(b"\0")[:-1]]
        record["how"] = "SIGTERM to dockerd, then " + shlex.join(argv)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while not process_ended(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if not process_ended(pid):
            # An engine that hangs on its way down dies as a crash would.
            os.kill(pid, signal.SIGKILL)
            record["how"] += f" (SIGKILL after {timeout} s: it did not stop)"
            deadline = time.monotonic() + 30
            while not process_ended(pid) and time.monotonic() < deadline:
                time.sleep(0.5)
            if not process_ended(pid):
                raise RuntimeError(f"dockerd (pid {pid}) did not end, even with SIGKILL")
        log = open("/var/log/edms-dockerd.log", "ab")  # noqa: SIM115 - the engine's own log
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
    deadline = time.monotonic() + timeout
    while not engine_answers():
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the Docker engine did not answer within {timeout} s of its restart"
            )
        time.sleep(1)
    record["db"] = "healthy" if wait_healthy(DB_CONTAINER) else "not healthy"
    if backend_was_running:
        record["backend"] = "healthy" if wait_healthy(BACKEND_CONTAINER) else "not healthy"
    else:
        record["backend"] = "stopped before the restart, " + (
            "running" if container_state(BACKEND_CONTAINER)[0] else "not restarted"
        )
    record["seconds"] = round(time.monotonic() - started, 1)
    return record


# ------------------------------------------------------------- one run


def newest_safety_archive(stack):
    archives, _partials = stack.archives()
    safety = [a for a in archives if "safety" in (a.get("label") or "")]
    return safety[0]["path"] if safety else None


def apply_recovery(stack, item, args, log_path):
    """Carry out one printed recovery; a step record."""
    kind = item["kind"]
    if kind == "wait-lock":
        gone = poll(lambda: not os.path.exists(stack.lock), args.lock_wait)
        return {"step": f"wait up to {args.lock_wait:g} s for the lock", "done": bool(gone)}
    if kind == "compose-up":
        proc = stack.compose_up()
        return {"step": "docker compose up -d --wait", "done": proc.returncode == 0}
    playbook = item["playbook"]
    if not os.path.isfile(os.path.join(ROOT, "playbooks", playbook)):
        return {"step": f"playbooks/{playbook}", "done": False, "why": "no such playbook"}
    variables = dict(item["vars"])
    guessed = False
    if playbook in ("rollback.yml", "restore.yml"):
        if "edms_archive" not in variables:
            if args.operator != "helpful":
                return {
                    "step": f"playbooks/{playbook}",
                    "done": False,
                    "why": "the message names no archive to give it",
                }
            newest = newest_safety_archive(stack)
            if newest is None:
                return {"step": f"playbooks/{playbook}", "done": False, "why": "no safety backup"}
            variables["edms_archive"] = newest
            guessed = True
        variables.setdefault("edms_restore_confirm", HOST)
    rc, _text, seconds = run_playbook_logged(stack, playbook, variables, log_path, args.timeout)
    step = {
        "step": shlex.join(
            ["playbooks/" + playbook] + [f"-e {k}={v}" for k, v in variables.items()]
        ),
        "done": rc == 0,
        "rc": rc,
        "seconds": seconds,
    }
    if guessed:
        step["operator"] = "gave it the newest safety backup"
    return step


def recover(stack, plan, older, args, log_path):
    """The next ordinary runs and the recoveries they print: (steps, unresolved reason or None)."""
    steps = []
    name = plan["operation"] + ".yml"
    variables = operation_vars(plan["operation"], older)
    for attempt in range(1, args.attempts + 1):
        rc, text, seconds = run_playbook_logged(stack, name, variables, log_path, args.timeout)
        steps.append(
            {"step": f"{name} (attempt {attempt})", "done": rc == 0, "rc": rc, "seconds": seconds}
        )
        if rc == 0:
            return steps, None
        offered = parse_recovery(text[-200000:])
        if not offered:
            messages = failure_messages(text[-200000:])
            return steps, "{} failed and printed no recovery: {}".format(
                name, " ".join(messages[-1].split())[:300]
            )
        for item in offered:
            step = apply_recovery(stack, item, args, log_path)
            step["recovery"] = True
            steps.append(step)
            if not step["done"]:
                return steps, "the printed recovery did not go through: {} ({})".format(
                    step["step"], step.get("why") or "rc {}".format(step.get("rc"))
                )
    return steps, f"{name} still failed after {args.attempts} attempts"


def operator_fixups(stack, args, steps):
    """What a helpful operator does beyond the printed text: start the stack's
    stopped services. Only with --operator helpful; each step recorded."""
    if args.operator != "helpful":
        return
    if not container_state(BACKEND_CONTAINER)[0]:
        proc = stack.compose_up()
        steps.append(
            {
                "step": "docker compose up -d --wait",
                "done": proc.returncode == 0,
                "operator": "backend not running",
            }
        )


def one_run(stack, plan, older, args, durations, logs):
    started = time.monotonic()
    record = dict(plan, type="run", seed=args.seed)
    if args.keep_going:
        record["cleared"] = stack.clear()
    if plan["operation"] == "restore" and stack.content() == older["state"]:
        # A restore that changes nothing would prove nothing.
        stack.activity()
    before = stack.content()
    delay = delay_for(plan["fraction"], durations[plan["operation"]])
    record["delay"] = delay
    log_path = os.path.join(
        logs, "run-{:04d}-{}-{}.log".format(plan["i"], plan["operation"], plan["target"])
    )
    record["log"] = os.path.relpath(log_path, ROOT)
    proc = start_playbook(
        stack,
        plan["operation"] + ".yml",
        operation_vars(plan["operation"], older["archive"]),
        log_path,
    )
    t0 = time.monotonic()
    ended = None
    while time.monotonic() - t0 < delay:
        if proc.poll() is not None:
            ended = proc.returncode
            break
        time.sleep(0.05)
    record["point"] = last_task(log_path)
    if ended is not None:
        killed = {
            "what": "nothing",
            "fallback": True,
            "why": f"the playbook had ended (rc {ended})",
        }
    else:
        killed = None
        target = plan["target"]
        if target == "module":
            killed = kill_module(proc, args.grace)
        elif target == "exec":
            killed = kill_exec(args.grace)
        elif target == "engine":
            try:
                killed = restart_engine()
            except RuntimeError as exc:
                record.update(
                    outcome=f"UNRESOLVED: engine restart: {exc}",
                    seconds=round(time.monotonic() - started, 1),
                )
                kill_group(proc.pid)
                wait_playbook(proc, 60)
                return record
        if killed is None and target != "playbook":
            killed = {"what": "playbook", "fallback": True, "why": f"no {target} running"}
            kill_group(proc.pid)
        elif killed is None:
            killed = {"what": "playbook", "pid": proc.pid}
            kill_group(proc.pid)
        killed.setdefault("fallback", False)
        killed["at"] = round(time.monotonic() - t0, 2)
    record["killed"] = killed
    record["run_rc"] = wait_playbook(proc, args.timeout)
    # The state the kill left, before anyone repairs it.
    if container_state(BACKEND_CONTAINER)[0]:
        try:
            left = stack.content()
            record["state_after_kill"] = (
                "before"
                if left == before
                else "after"
                if left == older["state"] and plan["operation"] == "restore"
                else "mixed"
            )
        except CONTENT_ERRORS:
            record["state_after_kill"] = "unreadable"
    else:
        record["state_after_kill"] = "backend not running"
    steps, unresolved = recover(stack, plan, older["archive"], args, log_path)
    operator_fixups(stack, args, steps)
    record["recovery"] = steps
    problems, final = [], None
    if not wait_healthy(BACKEND_CONTAINER, 60):
        problems.append("the backend is not healthy")
    try:
        final = stack.content()
    except CONTENT_ERRORS as exc:
        problems.append(f"the content cannot be read: {str(exc)[:200]}")
    problems += stack.leftovers()
    try:
        kept = []
        problems += stack.unverifiable(kept)
        record["partials"] = len(stack.archives()[1])
        if kept:
            record["kept_by_recovery"] = kept
    except (RuntimeError, AssertionError) as exc:
        problems.append(f"the archives cannot be listed: {exc}")
    record["outcome"] = outcome_of(
        plan["operation"],
        before,
        older["state"],
        final,
        unresolved=unresolved,
        problems=problems,
        recovered=any(s.get("recovery") for s in steps),
        operator=any(s.get("operator") for s in steps),
    )
    record["seconds"] = round(time.monotonic() - started, 1)
    return record


# ------------------------------------------------------------- the CLI


def arguments(argv=None):
    parser = argparse.ArgumentParser(
        description="Kill backups and restores of the demo stack at seeded random points; "
        "check that the next ordinary run (or the recovery it prints) gets the deployment "
        "to exactly the state before or after.",
    )
    parser.add_argument("--runs", type=int, default=100, help="number of runs (default 100)")
    parser.add_argument(
        "--seed", default=DEFAULT_SEED, help=f"the campaign's seed (default {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--start", type=int, default=0, help="index of the first run (to resume; default 0)"
    )
    parser.add_argument(
        "--operations", default=",".join(OPERATIONS), help="backup,restore (default both)"
    )
    parser.add_argument(
        "--kills", default=",".join(TARGETS), help="playbook,module,exec,engine (default all)"
    )
    parser.add_argument(
        "--durations",
        default="",
        help="usual durations, e.g. backup=40,restore=95 (default: measured by one run of each "
        "without a kill); give them to repeat a campaign's delays exactly",
    )
    parser.add_argument(
        "--out", default="build/kill-campaign/results.jsonl", help="JSON lines, appended"
    )
    parser.add_argument(
        "--table",
        default="",
        help="write the Markdown results table there (e.g. docs/kill-campaign.md)",
    )
    parser.add_argument(
        "--logs", default="build/kill-campaign/logs", help="per-run ansible-playbook logs"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the seeded plan; touch nothing"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=3.0,
        help="seconds a module or exec kill waits for one to run (default 3)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds one playbook may take (default 900)"
    )
    parser.add_argument(
        "--attempts", type=int, default=3, help="ordinary runs tried after a kill (default 3)"
    )
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=30,
        help="seconds to wait on a lock another run holds (default 30)",
    )
    parser.add_argument(
        "--operator",
        choices=("strict", "helpful"),
        default="strict",
        help="strict (default): only what the output prints; helpful: also start a stopped "
        "backend and give a rollback the newest safety backup when the message names none "
        "(such runs are counted apart)",
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="go on after an UNRESOLVED or DATA LOST run"
    )
    args = parser.parse_args(argv)
    try:
        args.operations = parse_choice(args.operations, OPERATIONS, "operation")
        args.kills = parse_choice(args.kills, TARGETS, "kill target")
        args.durations = parse_durations(args.durations)
    except ValueError as exc:
        parser.error(str(exc))
    if args.runs < 1 or args.start < 0:
        parser.error("--runs must be at least 1 and --start at least 0")
    return args


def write_table(args, durations):
    """The table of every run of the seed in --out (a resumed campaign's too),
    with the command that runs them all again with the same delays."""
    with open(args.out, encoding="utf-8") as handle:
        _campaign, records = campaign_records(handle, args.seed)
    whole = argparse.Namespace(**vars(args))
    if records:
        whole.start = records[0]["i"]
        whole.runs = records[-1]["i"] - records[0]["i"] + 1
    text = render_table(records, reproduce_command(whole, durations), durations)
    with open(args.table, "w", encoding="utf-8") as handle:
        handle.write(text)


def calibrate(stack, args, older, logs):
    durations = dict(args.durations)
    for operation in args.operations:
        if operation in durations:
            continue
        log_path = os.path.join(logs, f"calibrate-{operation}.log")
        rc, _output, seconds = run_playbook_logged(
            stack, operation + ".yml", operation_vars(operation, older), log_path, args.timeout
        )
        if rc != 0:
            raise SystemExit(
                f"kill campaign: the calibration run of {operation}.yml failed (see {log_path})"
            )
        durations[operation] = seconds
        print(f"calibration: {operation}.yml took {seconds:.1f} s", flush=True)
    return durations


def main(argv=None):
    args = arguments(argv)
    plan = make_plan(args.seed, args.runs, args.start, args.operations, args.kills)
    if args.dry_run:
        print(f"kill campaign, seed {args.seed!r}: {args.runs} run(s) from run {args.start}")
        print("\n".join(describe_plan(plan, args.durations)))
        return 0
    if "engine" in args.kills and os.geteuid() != 0:
        raise SystemExit(
            "kill campaign: restarting the Docker engine needs root"
            " (or leave engine out of --kills)"
        )
    os.chdir(ROOT)
    os.makedirs(args.logs, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    stack = Stack()
    stack.check_up()
    left = stack.leftovers()
    if left:
        raise SystemExit(
            "kill campaign: the deployment is not clean before the campaign: " + "; ".join(left)
        )
    private = tempfile.mkdtemp(prefix="edms-kill-older-")
    archive = stack.make_older(os.path.join(private, "archives"))
    older = {"archive": archive, "state": stack.content()}
    stack.activity()
    durations = calibrate(stack, args, archive, args.logs)
    command = reproduce_command(args, durations)
    with open(args.out, "a", encoding="utf-8") as out:
        out.write(
            json.dumps(
                {
                    "type": "campaign",
                    "seed": args.seed,
                    "command": command,
                    "durations": durations,
                    "older": archive,
                    "at": datetime.datetime.now(datetime.UTC).isoformat(),
                }
            )
            + "\n"
        )
    bad = 0
    for item in plan:
        record = one_run(stack, item, older, args, durations, args.logs)
        with open(args.out, "a", encoding="utf-8") as out:
            out.write(json.dumps(record, sort_keys=True) + "\n")
        print(
            "run {:>4} {:<8} {:<9} at {:>6.1f} s: killed {} -> {} ({:.0f} s)".format(
                record["i"],
                record["operation"],
                record["target"],
                record.get("delay", 0),
                (record.get("killed") or {}).get("what", "?"),
                record["outcome"],
                record["seconds"],
            ),
            flush=True,
        )
        if outcome_bucket(record["outcome"]) in ("UNRESOLVED", "DATA LOST"):
            bad += 1
            if not args.keep_going:
                given = ",".join(f"{k}={v:g}" for k, v in sorted(durations.items()))
                print(
                    f"stopped at run {record['i']}: once it is looked at, resume with"
                    f" --start {record['i'] + 1} --durations {given}"
                )
                break
    if args.table:
        write_table(args, durations)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
