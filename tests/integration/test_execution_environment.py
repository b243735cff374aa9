"""The execution environment (execution-environment.yml) built here and jobs run inside it.

tools/build-ee.sh builds the image with ansible-builder from the shipped
definition, with only the base image swapped for a local stand-in
(tools/ee-base.sh: no registry here). The jobs run the way AWX runs them in
an EE: ansible-runner inside the container, on a private data directory
mounted at /runner (project, inventory, env/extravars, env/cmdline), with the
collection as the image holds it. Every job template's playbook passes
ansible-playbook's syntax check there (the collection playbooks and roles it
imports resolve in the image). The Verify job needs no Docker on the managed
host, so it runs there completely: its modules run in the image's Python,
with the image's dependencies.
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
with open(os.path.join(ROOT, "awx", "job_templates.yml")) as _handle:
    JOB_PLAYBOOKS = sorted({t["playbook"] for t in yaml.safe_load(_handle)["edms_job_templates"]})


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


def runner_in_ee(image, playbook, host_vars=None, extravars=None, cmdline=None, mounts=()):
    """ansible-runner inside the image on a private data directory, as AWX runs a job.

    The project is awx/ (playbook: its path there, as the job template names it);
    one host, edms-demo, with a local connection. Returns the status ansible-runner
    wrote, its stdout, and the artifact data of the last playbook_on_stats event.
    """
    data = tempfile.mkdtemp(prefix="edms-ee-job-")
    try:
        shutil.copytree(os.path.join(ROOT, "awx"), os.path.join(data, "project", "awx"))
        os.makedirs(os.path.join(data, "env"))
        os.makedirs(os.path.join(data, "inventory"))
        host = {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}
        inventory = {
            "all": {"children": {"edms": {"hosts": {"edms-demo": host}, "vars": host_vars or {}}}}
        }
        with open(os.path.join(data, "inventory", "hosts.yml"), "w") as handle:
            yaml.safe_dump(inventory, handle)
        if extravars is not None:
            with open(os.path.join(data, "env", "extravars"), "w") as handle:
                yaml.safe_dump(extravars, handle)
        if cmdline is not None:
            with open(os.path.join(data, "env", "cmdline"), "w") as handle:
                handle.write(cmdline)
        volumes = []
        for mount in mounts:
            volumes += ["-v", f"{mount}:{mount}"]
        argv = [
            "docker", "run", "--rm", "--user", "0", "-v", f"{data}:/runner", *volumes,
            image, "ansible-runner", "run", "/runner", "-p", playbook,
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


def run_in_ee(image, archive_dir, archive):
    """The Verify job template's playbook through ansible-runner inside the image."""
    return runner_in_ee(
        image,
        "awx/playbooks/verify.yml",
        host_vars={"edms_archive_dir": archive_dir, "edms_display_timezone": "UTC"},
        extravars={"edms_archive": archive},
        mounts=[archive_dir],
    )


def test_the_image_holds_the_collection_and_its_python_dependencies(image):
    listed = run(["docker", "run", "--rm", image, "ansible-galaxy", "collection", "list"])
    assert f"edms.backup          {VERSION}" in listed.stdout, listed.stdout
    imports = "import docker, psycopg2, jmespath, ruamel.yaml, ansible_runner; print('ok')"
    proc = run(["docker", "run", "--rm", image, "python3", "-c", imports])
    assert proc.stdout.strip() == "ok"


def test_every_job_templates_playbook_passes_the_syntax_check_inside_the_image(image):
    assert len(JOB_PLAYBOOKS) >= 10, JOB_PLAYBOOKS
    failed = {}
    for playbook in JOB_PLAYBOOKS:
        status, stdout, _artifacts = runner_in_ee(image, playbook, cmdline="--syntax-check")
        if status != "successful" or f"playbook: {playbook}" not in stdout:
            failed[playbook] = stdout[-2000:]
    assert not failed, failed


def test_the_verify_job_runs_inside_the_image_as_awx_runs_it(image, archives):
    status, stdout, artifacts = run_in_ee(image, archives["dir"], archives["good"])
    assert status == "successful", stdout[-4000:]
    assert "verification passed" in stdout
    assert artifacts == {"edms_archive": archives["good"]}
    status, stdout, _artifacts = run_in_ee(image, archives["dir"], archives["corrupt"])
    assert status == "failed", stdout[-4000:]
    assert "does not verify" in stdout
