"""playbooks/prepare_host.yml for real, on this machine through a local
connection, into a virtual environment in a temporary directory; then the
collection's modules with and without it. No Docker: every run here has
DOCKER_HOST pointing at a socket nobody listens on, so a module that gets as
far as asking Docker fails with a connection error, never touching an engine.

pip installs from the index pip is configured for (PyPI, or the machine's
wheel directories through PIP_FIND_LINKS); about a minute in all.
"""

import json
import os
import pwd
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
SYSTEM_PYTHON = "/usr/bin/python3"
LIBRARIES = ["docker", "ruamel.yaml", "psycopg2", "jmespath", "cryptography"]


def env(tmp, **extra):
    environment = dict(os.environ)
    environment.update(
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        DOCKER_HOST="unix://" + os.path.join(str(tmp), "no-docker-engine.sock"),
    )
    environment.update(extra)
    return environment


def inventory(tmp, interpreter):
    """An inventory of this machine in the group edms, its modules pointed at
    interpreter (as an operator's inventory points them at the venv)."""
    path = os.path.join(str(tmp), "hosts.yml")
    with open(path, "w") as handle:
        json.dump(
            {
                "edms": {
                    "hosts": {
                        "edms-local": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": interpreter,
                        }
                    }
                }
            },
            handle,
        )
    return path


def playbook(tmp, venv, *args, extra_env=None):
    argv = [
        os.path.join(BIN, "ansible-playbook"),
        "-i",
        inventory(tmp, os.path.join(venv, "bin", "python")),
        os.path.join(ROOT, "playbooks", "prepare_host.yml"),
        "-e",
        json.dumps({"host_venv": venv}),
        *args,
    ]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=env(tmp, **(extra_env or {})),
        timeout=300,
        check=False,
    )
    return proc, proc.stdout + proc.stderr


def recap(output):
    """{'ok': n, 'changed': n, ...} of the one host's PLAY RECAP line."""
    line = next(line for line in output.splitlines() if line.startswith("edms-local "))
    return {key: int(value) for key, value in (part.split("=") for part in line.split()[2:])}


def module(tmp, name, args, interpreter):
    """An edms.backup module ad hoc on this machine with interpreter: (rc, result)."""
    argv = [
        os.path.join(BIN, "ansible"),
        "edms-local",
        "-i",
        inventory(tmp, interpreter),
        "-m",
        "edms.backup." + name,
    ]
    if args:
        argv += ["-a", json.dumps(args)]
    environment = env(
        tmp,
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
    )
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=environment, timeout=120, check=False
    )
    _host, sep, body = proc.stdout.partition(" => ")
    assert sep, proc.stdout + proc.stderr
    return proc.returncode, json.loads(body)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The venv made by prepare_host.yml, checked first in check mode, then
    run again to show it changes nothing: (tmp, venv, first run's output)."""
    tmp = tmp_path_factory.mktemp("prepare-host")
    venv = os.path.join(str(tmp), "share", "edms-backup", "venv")

    proc, output = playbook(tmp, venv, "--check")
    assert proc.returncode == 0, output
    assert not os.path.exists(os.path.dirname(venv)), "check mode created something"
    assert "would make the virtual environment " + venv in output, output
    assert recap(output)["changed"] >= 1, output

    proc, first = playbook(tmp, venv)
    assert proc.returncode == 0, first
    assert recap(first)["changed"] == 2, first  # the venv made, the libraries installed

    proc, second = playbook(tmp, venv)
    assert proc.returncode == 0, second
    assert recap(second)["changed"] == 0, second

    proc, checked = playbook(tmp, venv, "--check")
    assert proc.returncode == 0, checked
    assert recap(checked)["changed"] == 0, checked
    return tmp, venv, first


def test_the_venv_has_every_library_and_the_inventory_line_is_printed(prepared):
    _tmp, venv, output = prepared
    python = os.path.join(venv, "bin", "python")
    assert f"ansible_python_interpreter: {python}" in output
    # The play ran with the host's own Python although the inventory
    # already pointed at the venv (which did not exist at its start).
    assert "The inventory already sets it:" in output
    imported = subprocess.run(
        [python, "-c", "import " + ", ".join(LIBRARIES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr


def test_a_module_needing_docker_imports_it_with_the_venv_python(prepared):
    tmp, venv, _output = prepared
    project = tmp / "project"
    project.mkdir(exist_ok=True)
    (project / "docker-compose.yml").write_text("services:\n  backend:\n    image: busybox\n")
    rc, result = module(
        tmp, "stack_info", {"project_dir": str(project)}, os.path.join(venv, "bin", "python")
    )
    # Past the library check, stopped at the (absent) Docker engine.
    assert rc != 0
    assert "Failed to import" not in result["msg"], result
    assert "missing_libraries" not in result, result
    assert "no-docker-engine.sock" in result["msg"], result


def test_host_info_with_the_venv_python_reports_it_ready(prepared):
    tmp, venv, _output = prepared
    python = os.path.join(venv, "bin", "python")
    rc, result = module(tmp, "host_info", {}, python)
    assert rc == 0, result
    assert result["ready"] is True, result
    assert result["complete"] is True, result
    assert result["python"]["executable"] == python
    assert [lib["name"] for lib in result["libraries"]] == LIBRARIES
    assert all(lib["present"] and lib["ok"] for lib in result["libraries"]), result


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """The host's own Python with nothing installed: a venv of it without pip
    (whatever /usr/bin/python3 of the machine running the tests carries)."""
    path = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(path)], check=True)
    return str(path / "bin" / "python")


def test_a_module_without_its_libraries_names_them_the_interpreter_and_the_fix(
    tmp_path, bare_python
):
    rc, result = module(tmp_path, "stack_info", {"project_dir": str(tmp_path)}, bare_python)
    assert rc != 0
    message = result["msg"]
    assert message.startswith("Failed to import the required Python library (docker) on "), message
    assert f"with the interpreter {bare_python} (Python 3." in message
    assert "playbooks/prepare_host.yml" in message
    assert "ansible_python_interpreter" in message
    assert result["missing_libraries"] == ["docker"]
    assert result["interpreter"] == bare_python


def test_compose_storage_names_both_of_its_libraries(tmp_path, bare_python):
    rc, result = module(tmp_path, "compose_storage", {"project_dir": str(tmp_path)}, bare_python)
    assert rc != 0
    assert result["msg"].startswith(
        "Failed to import the required Python libraries (ruamel.yaml, docker) on "
    ), result["msg"]


def test_preflight_without_the_libraries_reports_host_ready_and_asks_no_docker(
    tmp_path, bare_python
):
    args = {
        "project_dir": str(tmp_path),
        "backup_dir": str(tmp_path / "backups"),
        "archive_dir": str(tmp_path / "archives"),
    }
    rc, result = module(tmp_path, "preflight_info", args, bare_python)
    assert rc == 0, result
    assert result["ok"] is False
    ready = next(f for f in result["findings"] if f["check"] == "host_ready")
    assert ready["severity"] == "error"
    assert bare_python in ready["message"]
    for name in LIBRARIES:
        assert name in ready["message"]
    assert "playbooks/prepare_host.yml" in ready["fix"]
    assert result["commands"] == [], result
    assert result["execs"] == [], result
    checks = {f["check"] for f in result["findings"]}
    assert "docker_checks" in checks
    assert not checks & {"services", "docker", "backend_probe", "backup_mount"}, checks
    assert {"project_lock", "backup_dir", "archive_store"} <= checks


def test_a_python_without_venv_fails_before_changing_anything(tmp_path):
    """Debian without python3-venv: no ensurepip module (here one that will
    not import stands in for it, on the modules' PYTHONPATH)."""
    stub = tmp_path / "stub" / "ensurepip"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'ensurepip'\")\n"
    )
    venv = os.path.join(str(tmp_path), "share", "venv")
    proc, output = playbook(tmp_path, venv, extra_env={"PYTHONPATH": str(tmp_path / "stub")})
    assert proc.returncode != 0, output
    assert "cannot make a virtual environment with pip" in output, output
    assert "Nothing was changed" in output
    assert "apt-get install python3-venv" in output
    assert not os.path.exists(os.path.dirname(venv))
    assert recap(output)["changed"] == 0, output


def test_the_default_path_is_under_the_home_of_the_user_ansible_connects_as(tmp_path):
    """host_venv's default, ~/.local/share/edms-backup/venv, resolved on the
    host (the user's home from the host's user database); check mode only,
    so this machine's home is left as it was."""
    default = os.path.join(
        pwd.getpwuid(os.getuid()).pw_dir, ".local", "share", "edms-backup", "venv"
    )
    existed = os.path.exists(default)
    argv = [
        os.path.join(BIN, "ansible-playbook"),
        "-i",
        inventory(tmp_path, SYSTEM_PYTHON),
        os.path.join(ROOT, "playbooks", "prepare_host.yml"),
        "--check",
    ]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env(tmp_path), timeout=300, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    # "would make <default> ...", "would install ... into <default>", or the
    # line to set: each names the resolved path.
    assert default in " ".join(output.split()), output
    assert os.path.exists(default) == existed


def test_the_preflight_role_shows_host_ready_and_stops_on_it(tmp_path, bare_python):
    argv = [
        os.path.join(BIN, "ansible-playbook"),
        "-i",
        inventory(tmp_path, bare_python),
        os.path.join(ROOT, "playbooks", "preflight.yml"),
        "-e",
        json.dumps(
            {
                "edms_project_dir": str(tmp_path),
                "edms_backup_dir": str(tmp_path / "backups"),
                "edms_archive_dir": str(tmp_path / "archives"),
            }
        ),
    ]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env(tmp_path), timeout=300, check=False
    )
    output = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0, output
    assert f"ERROR host_ready: the modules run with {bare_python}" in output, output
    assert "-> fix: run playbooks/prepare_host.yml on this host" in output
    assert "WARNING docker_checks: not checked" in output
    assert "Preflight found" in output
    assert "TASK [edms.backup.preflight : Stop on preflight errors]" in output
