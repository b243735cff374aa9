"""The execution environment (execution-environment.yml) built here and a job run inside it.

tools/build-ee.sh builds the image with ansible-builder (a local base image
and a wheelhouse: no registry, see the script). The job runs the way AWX runs
it in an EE: ansible-runner inside the container, on a private data
directory mounted at /runner (project, inventory, env/extravars), with the
collection as the image holds it. The Verify job needs no Docker on the
managed host, so it runs there completely: its modules run in the image's
Python, with the image's dependencies.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
import yaml

from .conftest import ROOT, RUN, run, run_module

PROJECT = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}
with open(os.path.join(ROOT, "galaxy.yml")) as _handle:
    VERSION = yaml.safe_load(_handle)["version"]
IMAGE = f"edms-backup-ee:{VERSION}"


@pytest.fixture(scope="module")
def image(stack):
    run([os.path.join(ROOT, "tools", "build-ee.sh")], timeout=1200)
    return IMAGE


@pytest.fixture(scope="module")
def archives(stack):
    """A real archive of the demo stack, and a copy with one model name of its fixture changed."""
    directory = tempfile.mkdtemp(prefix="edms-ee-")
    os.chmod(directory, 0o755)
    rc, made = run_module("archive_create", {**PROJECT, "backup_dir": directory, "pgdump": False})
    assert rc == 0, made.get("msg")
    # The same altered copies the restore_refusals scenario refuses.
    script = os.path.join(ROOT, "molecule", "restore_refusals", "altered_archives.py")
    run([sys.executable, script, made["archive"], directory])
    corrupt = os.path.join(directory, "corrupt.zip")
    yield {"dir": directory, "good": made["archive"], "corrupt": corrupt}
    shutil.rmtree(directory, ignore_errors=True)


def run_in_ee(image, archive_dir, archive):
    """The Verify job template's playbook through ansible-runner inside the image."""
    data = tempfile.mkdtemp(prefix="edms-ee-job-")
    try:
        shutil.copytree(os.path.join(ROOT, "awx"), os.path.join(data, "project", "awx"))
        os.makedirs(os.path.join(data, "env"))
        os.makedirs(os.path.join(data, "inventory"))
        host = {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}
        inventory = {
            "all": {
                "children": {
                    "edms": {
                        "hosts": {"edms-demo": host},
                        "vars": {"edms_archive_dir": archive_dir, "edms_display_timezone": "UTC"},
                    }
                }
            }
        }
        with open(os.path.join(data, "inventory", "hosts.yml"), "w") as handle:
            yaml.safe_dump(inventory, handle)
        with open(os.path.join(data, "env", "extravars"), "w") as handle:
            yaml.safe_dump({"edms_archive": archive}, handle)
        argv = [
            "docker", "run", "--rm", "--user", "0",
            "-v", f"{data}:/runner", "-v", f"{archive_dir}:{archive_dir}",
            image, "ansible-runner", "run", "/runner", "-p", "awx/playbooks/verify.yml",
        ]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        status_files = []
        for base, _dirs, files in os.walk(os.path.join(data, "artifacts")):
            status_files += [os.path.join(base, name) for name in files if name == "status"]
        assert len(status_files) == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
        with open(status_files[0]) as handle:
            status = handle.read().strip()
        events = []
        for base, _dirs, files in os.walk(os.path.join(data, "artifacts")):
            for name in files:
                if base.endswith("job_events") and name.endswith(".json"):
                    with open(os.path.join(base, name)) as handle:
                        events.append(json.load(handle))
        stats = [e for e in events if e.get("event") == "playbook_on_stats"]
        artifacts = stats[-1]["event_data"].get("artifact_data", {}) if stats else {}
        return status, proc.stdout, artifacts
    finally:
        subprocess.run(["rm", "-rf", data], check=False)


def test_the_image_holds_the_collection_and_its_python_dependencies(image):
    listed = run(["docker", "run", "--rm", image, "ansible-galaxy", "collection", "list"])
    assert f"edms.backup          {VERSION}" in listed.stdout, listed.stdout
    imports = "import docker, psycopg2, jmespath, ruamel.yaml, ansible_runner; print('ok')"
    proc = run(["docker", "run", "--rm", image, "python3", "-c", imports])
    assert proc.stdout.strip() == "ok"


def test_the_verify_job_runs_inside_the_image_as_awx_runs_it(image, archives):
    status, stdout, artifacts = run_in_ee(image, archives["dir"], archives["good"])
    assert status == "successful", stdout[-4000:]
    assert "verification passed" in stdout
    assert artifacts == {"edms_archive": archives["good"]}
    status, stdout, _artifacts = run_in_ee(image, archives["dir"], archives["corrupt"])
    assert status == "failed", stdout[-4000:]
    assert "does not verify" in stdout
