"""The running demo stack, brought up once per test session (idempotent)."""

import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "demo")
# The deployment directory demo/bin/stack makes (its compose file and .env).
RUN = os.path.join(DEMO, "run")
COMPOSE_FILE = os.path.join(RUN, "docker-compose.prod.yml")
PROJECT = "edms-demo"
# ansible, ansible-playbook: those of the Python that runs the tests.
BIN = os.path.dirname(sys.executable)

# What `seed_demo --scale tiny` (the stack's default seed) writes.
TINY = {"users": 12, "documents": 60, "versions": 2, "workflows": 30, "steps": 3, "file_size": 2048}


def run(argv, check=True, env=None, input=None, timeout=600, cwd=None):
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=env,
        input=input,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            "command failed (exit {}): {}\nstdout:\n{}\nstderr:\n{}".format(
                proc.returncode, " ".join(argv), proc.stdout[-4000:], proc.stderr[-4000:]
            )
        )
    return proc


def stack_up():
    env = dict(os.environ)
    env.pop("EDMS_SEED_ARGS", None)
    return run([os.path.join(DEMO, "bin", "stack"), "up"], env=env, timeout=1800)


def compose(*args, **kwargs):
    return run(
        ["docker", "compose", "--project-directory", RUN, "-f", COMPOSE_FILE, *args], **kwargs
    )


def backend(*argv, env=None, **kwargs):
    """Run argv in the backend container; env: extra variables for that exec only."""
    flags = []
    for key, value in (env or {}).items():
        flags += ["-e", f"{key}={value}"]
    return compose("exec", "-T", *flags, "backend", *argv, **kwargs)


def manage(*args, env=None, **kwargs):
    return backend("python", "manage.py", *args, env=env, **kwargs)


CONTENT_STATE = os.path.join(ROOT, "tests", "content_state.py")


def content(env=None):
    """{"tables": {table: [count, md5]}, "media": {path: sha256}} of the deployment."""
    with open(CONTENT_STATE, encoding="utf-8") as handle:
        script = handle.read()
    out = backend("python", "-c", script, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def table_digests(env=None):
    """A content digest of every table of the application's data (see content_state.py)."""
    return content(env)["tables"]


def django_json(code, env=None):
    """Run Python code in the backend with Django set up; it prints one JSON line."""
    script = "import json, django\ndjango.setup()\n" + code
    out = backend("python", "-c", script, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def db_sql(sql, database=None):
    """Run SQL as the database owner over the db container's local socket."""
    cmd = 'psql -v ON_ERROR_STOP=1 -qAt -U "$POSTGRES_USER" -d "%s" -c "$0"' % (
        database or "$POSTGRES_DB"
    )
    return compose("exec", "-T", "db", "sh", "-c", cmd, sql).stdout


def project_resources():
    """Containers, networks and volumes that carry the project's Compose label."""
    label = f"label=com.docker.compose.project={PROJECT}"
    return {
        "containers": run(["docker", "ps", "-aq", "--filter", label]).stdout.split(),
        "networks": run(["docker", "network", "ls", "-q", "--filter", label]).stdout.split(),
        "volumes": run(["docker", "volume", "ls", "-q", "--filter", label]).stdout.split(),
    }


@pytest.fixture(scope="session")
def stack():
    stack_up()
    return DEMO


def ansible_env():
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = os.path.join(ROOT, "ansible.cfg")
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.minimal"
    env["ANSIBLE_LOAD_CALLBACK_PLUGINS"] = "1"
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    return env


def run_module(module, args, check_mode=False, warnings=False):
    """Run an edms.backup module ad hoc on the demo host; return (rc, result), or with
    warnings (rc, result, the [WARNING] lines Ansible printed on stderr)."""
    argv = [
        os.path.join(BIN, "ansible"),
        "edms-demo",
        "-i",
        os.path.join(ROOT, "inventories", "demo"),
        "-m",
        "edms.backup." + module,
        "-a",
        json.dumps(args),
    ]
    if check_mode:
        argv.append("--check")
    proc = run(argv, env=ansible_env(), check=False)
    _host, sep, body = proc.stdout.partition(" => ")
    assert sep, proc.stdout + proc.stderr
    if warnings:
        printed = [line for line in proc.stderr.splitlines() if line.startswith("[WARNING]")]
        return proc.returncode, json.loads(body), printed
    return proc.returncode, json.loads(body)


def run_playbook(name, *extra_vars, check=False, diff=False, env=None):
    """ansible-playbook playbooks/<name> on the demo inventory, default output,
    results as JSON; extra_vars are "key=value" strings or dicts; env: more
    environment variables. Not checked: returns the CompletedProcess."""
    argv = [
        os.path.join(BIN, "ansible-playbook"),
        "-i",
        os.path.join(ROOT, "inventories", "demo"),
        os.path.join(ROOT, "playbooks", name),
    ]
    for item in extra_vars:
        argv += ["-e", item if isinstance(item, str) else json.dumps(item)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    environment = {**ansible_env(), **(env or {})}
    environment["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
    environment["ANSIBLE_NOCOLOR"] = "1"
    return run(argv, env=environment, check=False, timeout=900)


TEMPLATE = os.path.join(DEMO, "docker-compose.prod.yml")


def backups_of_compose_file():
    return set(glob.glob(COMPOSE_FILE + ".*.bak"))


def reset():
    """The checklist's state: the template compose file, the backend made from it."""
    shutil.copyfile(TEMPLATE, COMPOSE_FILE)
    compose("up", "-d", "--wait", "backend")


@pytest.fixture
def checklist_state(stack):
    """Start from the template state and return to it, whatever the test did."""
    copies = backups_of_compose_file()
    reset()
    yield
    reset()
    for path in backups_of_compose_file() - copies:
        os.remove(path)


HOLD = """
- hosts: edms
  gather_facts: false
  tasks:
    - name: Take the lock
      edms.backup.lock:
        project_dir: {project}
        owner: {owner}
        operation: {operation}
      register: held
    - name: Hold it until told
      ansible.builtin.wait_for:
        path: {flag}
        timeout: 600
    - name: Release it
      edms.backup.lock:
        project_dir: {project}
        state: absent
        token: "{{{{ held.token }}}}"
"""

LOCK = os.path.join(RUN, ".edms-backup.lock")


@contextlib.contextmanager
def lock_held(directory, owner="first restore", operation="restore"):
    """The project lock, held by a live ansible-playbook run until the block ends.

    directory: a scratch directory for its playbook and release flag.
    """
    flag = os.path.join(directory, "release")
    playbook = os.path.join(directory, "hold.yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        handle.write(HOLD.format(project=RUN, flag=flag, owner=owner, operation=operation))
    holder = subprocess.Popen(
        [
            os.path.join(BIN, "ansible-playbook"),
            "-i",
            os.path.join(ROOT, "inventories", "demo"),
            playbook,
        ],
        stdout=subprocess.DEVNULL,
        env=ansible_env(),
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(LOCK):
            assert time.monotonic() < deadline, "the holder never took the lock"
            assert holder.poll() is None, "the holder ended before it took the lock"
            time.sleep(0.5)
        yield
    finally:
        with open(flag, "w", encoding="utf-8"):
            pass
        holder.wait(timeout=120)
    assert not os.path.exists(LOCK)
