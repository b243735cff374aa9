"""edms.backup.compose_storage against the demo stack, the way Ansible runs it.

Each test starts from the checklist's state (the template compose file, no
mount, no BACKUP_DIR) and puts it back when it ends, the backend recreated
from the template, so the stack other tests use is left as they expect.
"""

import json
import os

from .conftest import (
    BIN,
    COMPOSE_FILE,
    ROOT,
    RUN,
    TEMPLATE,
    backend,
    backups_of_compose_file,
    compose,
    lock_held,
    run,
    run_playbook,
)

INVENTORY = os.path.join(ROOT, "inventories", "demo")
HOST_DIR = os.path.join(RUN, "backups")
BASE_ARGS = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}


def ansible_env():
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = os.path.join(ROOT, "ansible.cfg")
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def storage(check_mode=False, diff=False, **args):
    """Run the module ad hoc on the demo host; return (rc, result, output)."""
    argv = [
        os.path.join(BIN, "ansible"),
        "edms-demo",
        "-i",
        INVENTORY,
        "-m",
        "edms.backup.compose_storage",
        "-a",
        json.dumps({**BASE_ARGS, **args}),
    ]
    if check_mode:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    proc = run(argv, env=ansible_env(), check=False)
    output = proc.stdout + proc.stderr
    head = output.rfind("edms-demo | ")
    assert head >= 0, output
    assert " => " in output[head:], output
    return proc.returncode, json.loads(output[head:].split(" => ", 1)[1]), output


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def container_id(service):
    return compose("ps", "-q", service).stdout.strip()


def host_dir_state():
    if not os.path.exists(HOST_DIR):
        return None
    st = os.stat(HOST_DIR)
    return st.st_uid, st.st_gid, st.st_mode


def test_check_mode_reports_the_diff_and_changes_nothing(checklist_state):
    before = read(COMPOSE_FILE)
    backend_id, copies, host = container_id("backend"), backups_of_compose_file(), host_dir_state()
    rc, result, output = storage(check_mode=True, diff=True)
    assert rc == 0, output
    assert result["changed"] is True
    assert "services.backend.volumes: add ./backups:/app/backups" in result["actions"]
    assert "services.backend.environment: add BACKUP_DIR=/app/backups" in result["actions"]
    # The diff Ansible prints: the two added lines, nothing else.
    added = [line for line in output.splitlines() if line.startswith("+") and "+++" not in line]
    removed = [line for line in output.splitlines() if line.startswith("-") and "---" not in line]
    assert added == ["+      BACKUP_DIR: /app/backups", "+      - ./backups:/app/backups"]
    assert removed == []
    # The commands it would run, and nothing written or recreated.
    assert result["commands"][-1].endswith("up -d --no-deps --wait backend")
    assert result["proof"] == {"verified": False, "reason": "check mode: nothing was run"}
    assert result["backup_file"] is None
    assert read(COMPOSE_FILE) == before
    assert container_id("backend") == backend_id
    assert backups_of_compose_file() == copies
    assert host_dir_state() == host
    assert backend("printenv", "BACKUP_DIR", check=False).returncode == 1


def test_real_run_mounts_sets_recreates_only_the_backend_and_proves_it(checklist_state):
    template = read(TEMPLATE)
    db_id, backend_id = container_id("db"), container_id("backend")
    uid = int(backend("id", "-u").stdout)
    gid = int(backend("id", "-g").stdout)

    rc, result, output = storage(diff=True)
    assert rc == 0, output
    assert result["changed"] is True

    # The compose file: the template plus two lines, every comment kept.
    edited = read(COMPOSE_FILE)
    assert sorted(set(edited.splitlines()) - set(template.splitlines())) == [
        "      - ./backups:/app/backups",
        "      BACKUP_DIR: /app/backups",
    ]
    assert len(edited.splitlines()) == len(template.splitlines()) + 2
    comments = [line for line in template.splitlines() if "#" in line or not line.strip()]
    assert [line for line in edited.splitlines() if "#" in line or not line.strip()] == comments
    assert read(result["backup_file"]) == template
    assert oct(os.stat(COMPOSE_FILE).st_mode & 0o777) == "0o644"

    # Only the backend was recreated.
    assert container_id("db") == db_id
    assert container_id("backend") != backend_id

    # The backend sees the directory and the variable.
    assert backend("printenv", "BACKUP_DIR").stdout.strip() == "/app/backups"
    backend("test", "-d", "/app/backups", "-a", "-w", "/app/backups")
    st = os.stat(HOST_DIR)
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)) == (uid, gid, "0o775")

    # A file written inside the container appears on the host, owned by its user.
    name = "storage-integration-probe"
    try:
        backend("sh", "-c", 'echo from-the-backend > "$0"', f"/app/backups/{name}")
        on_host = os.path.join(HOST_DIR, name)
        assert read(on_host) == "from-the-backend\n"
        assert os.stat(on_host).st_uid == uid
    finally:
        backend("rm", "-f", f"/app/backups/{name}")

    # The module's own proof says the same.
    proof = result["proof"]
    assert proof["verified"] is True
    assert proof["user"]["uid"] == uid
    assert proof["mount"]["source"] == HOST_DIR
    assert proof["mount"]["destination"] == "/app/backups"
    assert proof["mount"]["rw"] is True
    assert proof["environment"] == {"BACKUP_DIR": "/app/backups"}
    assert proof["probe"]["owner"] == uid
    assert proof["probe"]["removed"] is True
    assert not os.path.exists(proof["probe"]["host_path"])

    # A second run changes nothing.
    copies, recreated = backups_of_compose_file(), container_id("backend")
    rc, again, output = storage()
    assert rc == 0, output
    assert again["changed"] is False
    assert again["actions"] == []
    assert again["backup_file"] is None
    assert read(COMPOSE_FILE) == edited
    assert container_id("backend") == recreated
    assert backups_of_compose_file() == copies
    assert again["proof"]["verified"] is True


def test_unknown_service_fails_naming_it_and_changes_nothing(checklist_state):
    before, backend_id = read(COMPOSE_FILE), container_id("backend")
    rc, result = storage(service="web")[:2]
    assert rc != 0
    assert result["msg"] == (
        f"cannot edit {COMPOSE_FILE}: service 'web' is not defined in docker-compose.prod.yml"
        " (services: db, backend, worker)"
    )
    assert read(COMPOSE_FILE) == before
    assert container_id("backend") == backend_id


def test_missing_compose_file_fails_naming_it(checklist_state):
    rc, result = storage(compose_files=["docker-compose.staging.yml"])[:2]
    assert rc != 0
    assert result["msg"] == f"compose file {RUN}/docker-compose.staging.yml does not exist"
    assert not os.path.exists(os.path.join(RUN, "docker-compose.staging.yml"))


def test_conflicting_mount_fails_naming_it_and_changes_nothing(checklist_state):
    conflicting = read(TEMPLATE).replace(
        "      - media:/app/storage/media   # uploaded documents\n",
        "      - media:/app/storage/media   # uploaded documents\n"
        "      - ./old-backups:/app/backups\n",
    )
    with open(COMPOSE_FILE, "w", encoding="utf-8") as handle:
        handle.write(conflicting)
    backend_id, copies = container_id("backend"), backups_of_compose_file()
    rc, result = storage()[:2]
    assert rc != 0
    assert result["msg"].startswith(f"cannot edit {COMPOSE_FILE}: service 'backend' in")
    assert "already mounts './old-backups:/app/backups' at /app/backups" in result["msg"]
    assert "replace_mount" in result["msg"]
    assert read(COMPOSE_FILE) == conflicting
    assert container_id("backend") == backend_id
    assert backups_of_compose_file() == copies
    assert not os.path.exists(os.path.join(RUN, "old-backups"))


def test_storage_playbook_in_check_mode_changes_nothing(checklist_state):
    before, backend_id = read(COMPOSE_FILE), container_id("backend")
    proc = run_playbook("storage.yml", check=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "services.backend.volumes: add ./backups:/app/backups" in proc.stdout
    assert "Not proven: check mode: nothing was run" in proc.stdout
    assert "failed=0" in proc.stdout
    assert read(COMPOSE_FILE) == before
    assert container_id("backend") == backend_id


def test_storage_playbook_is_refused_while_another_operation_holds_the_lock(
    checklist_state, tmp_path
):
    """The storage phase may recreate the backend: never under a running restore."""
    before, backend_id = read(COMPOSE_FILE), container_id("backend")
    with lock_held(str(tmp_path), owner="a restore"):
        proc = run_playbook("storage.yml")
        assert proc.returncode != 0
        assert "another operation is running: a restore" in proc.stdout, proc.stdout[-3000:]
    assert read(COMPOSE_FILE) == before
    assert container_id("backend") == backend_id


def test_storage_playbook_refuses_bad_input_before_changing_anything(checklist_state):
    before = read(COMPOSE_FILE)
    proc = run_playbook("storage.yml", "storage_host_path_mode=rwx")
    assert proc.returncode != 0
    assert "storage_host_path_mode must be an octal mode such as '0775', not 'rwx'" in proc.stdout
    assert read(COMPOSE_FILE) == before


def test_a_container_without_the_mount_is_recreated_even_if_the_file_has_it(checklist_state):
    rc, first, output = storage(recreate=False)
    assert rc == 0, output
    # The file has the mount now, the running backend does not, and says so.
    assert first["changed"] is True
    assert first["proof"]["verified"] is False
    assert "recreate is false" in first["proof"]["reason"]
    backend_id = container_id("backend")
    assert backend("sh", "-c", 'echo "${BACKUP_DIR:-unset}"').stdout.strip() == "unset"

    rc, second, output = storage()
    assert rc == 0, output
    assert second["changed"] is True
    assert any("recreate" in action for action in second["actions"])
    assert container_id("backend") != backend_id
    assert second["proof"]["verified"] is True
    assert backend("printenv", "BACKUP_DIR").stdout.strip() == "/app/backups"
