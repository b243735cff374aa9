"""A managed host reached over real SSH, as staging is (tests/ssh).

On this machine, as root (the administrator who sets the host up, once):
- a user ``lims`` (uid 2001, or the one it already has, never the container
  user's 1000), in the docker group, not root, no password, with the system
  Python only: the collection's libraries reach it only through
  playbooks/prepare_host.yml;
- an sshd of its own on 127.0.0.1:2222 (its own configuration, host key and
  log in build/ssh; key login for lims only), never on any other address;
- a Compose project ``edms-ssh`` in /home/lims/edms-staging, the staging
  layout: the demo's compose file with its own names and loopback ports, a
  .env of fresh secrets (0600), everything owned by lims; migrated and seeded;
- an inventory (build/ssh/inventory) made of inventories/staging's own
  group_vars, with only the address, the ports and the key replaced.

Everything the collection does then happens as lims over SSH. A sudo rule for
lims exists only while a test asks for it (``sudo_rule``).

A second login, ``edmscopy`` (uid 2002, not in the docker group, the system
Python only), is the host copies go to (inventory host ``copy-host``, group
``backup_hosts``): another SSH host as far as Ansible can tell, on the same
sshd.
"""

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
BUILD = os.path.join(ROOT, "build", "ssh")
USER = "lims"
UID = 2001
SSH_PORT = 2222
DB_PORT = 55435
WEB_PORT = 8035
HOST = "edms-ssh"
COPY_USER = "edmscopy"
COPY_UID = 2002
COPY_HOST = "copy-host"
COPY_HOME = f"/home/{COPY_USER}"
PROJECT_NAME = "edms-ssh"
HOME = f"/home/{USER}"
PROJECT = f"{HOME}/edms-staging"
COMPOSE_FILE = os.path.join(PROJECT, "docker-compose.prod.yml")
ARCHIVES = os.path.join(PROJECT, "edms-archives")
VENV = f"{HOME}/.local/share/edms-backup/venv"
SUDOERS = "/etc/sudoers.d/edms-ssh-test"
# How long the controller keeps its SSH connection after its last use: short,
# so that a killed run's connection (the lock's anchor) ends within seconds.
CONTROL_PERSIST = 3


def run(argv, check=True, env=None, timeout=900, user=None, input=None):
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        input=input,
        cwd="/",
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{argv} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def compose(*args, check=True, timeout=900):
    """docker compose on the edms-ssh project, as lims (the docker group)."""
    return run(
        ["docker", "compose", "--project-directory", PROJECT, "-f", COMPOSE_FILE, *args],
        check=check,
        timeout=timeout,
        user=USER,
    )


def account():
    """The user lims: its uid, and its home made only its own."""
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        run(["useradd", "--uid", str(UID), "--create-home", "--shell", "/bin/bash", USER])
        entry = pwd.getpwnam(USER)
    if entry.pw_uid in (0, 1000):
        pytest.fail(f"user {USER} has uid {entry.pw_uid}; the SSH tests need another one")
    run(["usermod", "-aG", "docker", USER])
    # A locked password ("!") makes sshd refuse even a key; "*" allows only keys.
    run(["usermod", "-p", "*", USER])
    os.chmod(HOME, 0o750)
    return entry


def copy_account():
    """The user edmscopy, which holds the copies of the second host."""
    try:
        entry = pwd.getpwnam(COPY_USER)
    except KeyError:
        run(["useradd", "--uid", str(COPY_UID), "--create-home", "--shell", "/bin/bash", COPY_USER])
        entry = pwd.getpwnam(COPY_USER)
    if entry.pw_uid in (0, 1000):
        pytest.fail(f"user {COPY_USER} has uid {entry.pw_uid}; the SSH tests need another one")
    run(["usermod", "-p", "*", COPY_USER])
    os.chmod(COPY_HOME, 0o750)
    return entry


def chown_tree(path, entry):
    for base, dirs, files in os.walk(path):
        for name in [base, *(os.path.join(base, n) for n in dirs + files)]:
            os.lchown(name, entry.pw_uid, entry.pw_gid)


def keys(*entries):
    os.makedirs(BUILD, exist_ok=True)
    for name in ("host_ed25519", "id_ed25519"):
        path = os.path.join(BUILD, name)
        if not os.path.exists(path):
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path])
    for entry in entries:
        ssh_dir = os.path.join(entry.pw_dir, ".ssh")
        os.makedirs(ssh_dir, exist_ok=True)
        authorized = os.path.join(ssh_dir, "authorized_keys")
        shutil.copyfile(os.path.join(BUILD, "id_ed25519.pub"), authorized)
        os.chmod(ssh_dir, 0o700)
        os.chmod(authorized, 0o600)
        chown_tree(ssh_dir, entry)
    with open(os.path.join(BUILD, "host_ed25519.pub")) as handle:
        host_key = handle.read().split()[:2]
    with open(os.path.join(BUILD, "known_hosts"), "w") as handle:
        handle.write(f"[127.0.0.1]:{SSH_PORT} {' '.join(host_key)}\n")


SSHD_CONFIG = """\
# The SSH test host's own sshd (tests/ssh/conftest.py): loopback only.
ListenAddress 127.0.0.1
Port {port}
HostKey {build}/host_ed25519
PidFile {build}/sshd.pid
AllowUsers {user} {copy_user}
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
UsePAM no
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
Subsystem sftp /usr/lib/openssh/sftp-server
"""


def port_open(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_sshd():
    pidfile = os.path.join(BUILD, "sshd.pid")
    try:
        with open(pidfile) as handle:
            os.kill(int(handle.read().strip()), signal.SIGTERM)
    except (OSError, ValueError):
        pass
    for _attempt in range(50):
        if not port_open(SSH_PORT):
            return
        time.sleep(0.1)


def start_sshd():
    stop_sshd()
    if port_open(SSH_PORT):
        pytest.fail(f"127.0.0.1:{SSH_PORT} is taken by something else")
    config = os.path.join(BUILD, "sshd_config")
    with open(config, "w") as handle:
        handle.write(SSHD_CONFIG.format(port=SSH_PORT, build=BUILD, user=USER, copy_user=COPY_USER))
    os.makedirs("/run/sshd", exist_ok=True)
    run(["/usr/sbin/sshd", "-t", "-f", config])
    run(["/usr/sbin/sshd", "-f", config, "-E", os.path.join(BUILD, "sshd.log")])
    for _attempt in range(50):
        if port_open(SSH_PORT):
            return
        time.sleep(0.1)
    pytest.fail(f"sshd did not listen on 127.0.0.1:{SSH_PORT}; see {BUILD}/sshd.log")


def compose_text():
    """The demo's compose file as the edms-ssh project: its own name, container
    names and loopback ports."""
    with open(os.path.join(ROOT, "demo", "docker-compose.prod.yml")) as handle:
        text = handle.read()
    replacements = {
        "name: edms-demo": f"name: {PROJECT_NAME}",
        "container_name: edms_demo_db": "container_name: edms_ssh_db",
        "container_name: edms_demo_backend": "container_name: edms_ssh_backend",
        '"127.0.0.1:5433:5432"': f'"127.0.0.1:{DB_PORT}:5432"',
        '"127.0.0.1:8001:8000"': f'"127.0.0.1:{WEB_PORT}:8000"',
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def env_text():
    with open(os.path.join(ROOT, "demo", ".env.example")) as handle:
        lines = handle.read().splitlines()
    return "".join(
        line.replace("CHANGE_ME", secrets.token_hex(16)) + "\n"
        for line in lines
        if not line.startswith("#")
    )


def down():
    if os.path.exists(COMPOSE_FILE):
        compose("down", "-v", "--remove-orphans", check=False, timeout=300)
    # Whatever is left of the project (a compose file edited away).
    label = f"label=com.docker.compose.project={PROJECT_NAME}"
    containers = run(["docker", "ps", "-aq", "--filter", label], check=False).stdout.split()
    if containers:
        run(["docker", "rm", "-f", *containers], check=False)
    for kind in ("volume", "network"):
        found = run(["docker", kind, "ls", "-q", "--filter", label], check=False).stdout.split()
        if found:
            run(["docker", kind, "rm", *found], check=False)


def project(entry):
    """/home/lims/edms-staging from nothing, up, migrated, seeded."""
    down()
    shutil.rmtree(PROJECT, ignore_errors=True)
    os.makedirs(PROJECT)
    with open(COMPOSE_FILE, "w") as handle:
        handle.write(compose_text())
    env_file = os.path.join(PROJECT, ".env")
    with open(os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        handle.write(env_text())
    chown_tree(PROJECT, entry)
    compose("up", "-d", "--wait", "db", "backend", timeout=600)
    compose("exec", "-T", "backend", "python", "manage.py", "migrate", "--noinput")
    compose(
        "exec", "-T", "backend", "python", "manage.py", "seed_demo", "--if-empty", "--scale", "tiny"
    )


def inventory():
    """inventories/staging's group_vars as they are, the address, ports and key
    replaced: the staging inventory, pointed at the test host."""
    directory = os.path.join(BUILD, "inventory")
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(os.path.join(directory, "group_vars"))
    with open(os.path.join(ROOT, "inventories", "staging", "group_vars", "edms.yml")) as handle:
        group_vars = yaml.safe_load(handle)
    assert group_vars["edms_project_dir"] == PROJECT
    group_vars["edms_db_port"] = DB_PORT
    with open(os.path.join(directory, "group_vars", "edms.yml"), "w") as handle:
        yaml.safe_dump(group_vars, handle)
    hosts = {
        "edms": {
            "hosts": {
                HOST: {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": SSH_PORT,
                    "ansible_user": USER,
                    "ansible_ssh_private_key_file": os.path.join(BUILD, "id_ed25519"),
                    "ansible_ssh_common_args": (
                        f"-o UserKnownHostsFile={BUILD}/known_hosts -o StrictHostKeyChecking=yes"
                    ),
                    # What the staging inventory's comment says to set once
                    # playbooks/prepare_host.yml has made the environment.
                    "ansible_python_interpreter": f"{VENV}/bin/python",
                }
            }
        },
        # Where copies go (tests/ssh/test_ssh_cycle.py, copies): nothing but
        # the system Python there.
        "backup_hosts": {
            "hosts": {
                COPY_HOST: {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": SSH_PORT,
                    "ansible_user": COPY_USER,
                    "ansible_ssh_private_key_file": os.path.join(BUILD, "id_ed25519"),
                    "ansible_ssh_common_args": (
                        f"-o UserKnownHostsFile={BUILD}/known_hosts -o StrictHostKeyChecking=yes"
                    ),
                    "ansible_python_interpreter": "/usr/bin/python3",
                }
            }
        },
    }
    with open(os.path.join(directory, "hosts.yml"), "w") as handle:
        yaml.safe_dump(hosts, handle)
    return directory


def ansible_env(control_path_dir=None):
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_SSH_ARGS=f"-o ControlMaster=auto -o ControlPersist={CONTROL_PERSIST}s",
    )
    if control_path_dir:
        env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = control_path_dir
    return env


def playbook_argv(inventory_dir, name, *extra_vars):
    argv = [
        os.path.join(BIN, "ansible-playbook"),
        "-i",
        inventory_dir,
        os.path.join(ROOT, "playbooks", name),
    ]
    for item in extra_vars:
        argv += ["-e", item]
    return argv


@pytest.fixture(scope="session")
def ssh_host():
    """The SSH test host: (inventory directory, lims's passwd entry)."""
    if os.geteuid() != 0:
        pytest.fail("the SSH tests set up a user and an sshd: run them as root (make ssh)")
    for program in ("/usr/sbin/sshd", "/usr/bin/sudo"):
        if not os.path.exists(program):
            pytest.fail(f"{program} is missing: apt-get install openssh-server sudo (.ci/run does)")
    if os.path.exists(SUDOERS):  # left by a run that was killed
        os.remove(SUDOERS)
    entry = account()
    copy_entry = copy_account()
    keys(entry, copy_entry)
    start_sshd()
    try:
        project(entry)
        yield inventory(), entry
    finally:
        down()
        stop_sshd()
        if os.path.exists(SUDOERS):
            os.remove(SUDOERS)


@contextlib.contextmanager
def sudo_rule():
    """lims may become root through sudo, without a password, inside the block."""
    with open(SUDOERS, "w") as handle:
        handle.write(f"{USER} ALL=(root) NOPASSWD: ALL\n")
    os.chmod(SUDOERS, 0o440)
    run(["visudo", "-c", "-f", SUDOERS])
    try:
        yield
    finally:
        os.remove(SUDOERS)
