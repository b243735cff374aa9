"""edms.backup.stack_info against the demo stack, the way Ansible runs it."""

import os

from .conftest import ROOT, RUN, TINY, compose, run_module, run_playbook

INVENTORY = os.path.join(ROOT, "inventories", "demo")
BASE_ARGS = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}


def stack_info(check_mode=False, **args):
    return run_module("stack_info", {**BASE_ARGS, **args}, check_mode=check_mode)


def test_reports_services_and_counts(stack):
    rc, result = stack_info()
    assert rc == 0, result
    assert result["changed"] is False
    services = {s["service"]: s for s in result["services"]}
    assert services["db"]["healthy"]
    assert services["backend"]["healthy"]
    total = TINY["documents"]
    assert result["counts"]["documents.Document"] == {"rows": total, "visible": total - total // 10}
    assert result["counts"]["users.User"]["rows"] == TINY["users"]
    assert result["counts"]["workflows.Workflow"]["rows"] == TINY["workflows"]
    assert any(" ps " in c for c in result["commands"])
    assert [e["command"].split()[:2] for e in result["execs"]] == [["python", "-c"]]


def test_check_mode_reports_the_same(stack):
    normal = stack_info()[1]
    rc, checked = stack_info(check_mode=True)
    assert rc == 0
    assert checked["counts"] == normal["counts"]


def test_all_models_can_be_counted(stack):
    rc, result = stack_info(count_models=["__all__"])
    assert rc == 0, result
    counts = result["counts"]
    assert counts["documents.DocumentVersion"]["rows"] == TINY["documents"] * TINY["versions"]
    assert counts["audit.AuditTrail"]["rows"] == TINY["documents"] + TINY["workflows"]


def test_unknown_model_fails_naming_it(stack):
    rc, result = stack_info(count_models=["documents.Nope"])
    assert rc != 0
    assert "unknown model(s) documents.Nope" in result["msg"]
    assert "documents.document" in result["msg"]


def test_wrong_backend_service_fails_naming_it(stack):
    rc, result = stack_info(backend_service="web")
    assert rc != 0
    assert "service 'web' is not defined in docker-compose.prod.yml" in result["msg"]
    assert "db, backend" in result["msg"]


def test_missing_project_dir_fails_naming_it(stack):
    rc, result = stack_info(project_dir="/nonexistent/edms")
    assert rc != 0
    assert result["msg"] == "project directory /nonexistent/edms does not exist"


def test_status_playbook_prints_services_and_counts(stack):
    proc = run_playbook("stack_status.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    total = TINY["documents"]
    assert "backend: running (healthy)" in proc.stdout
    assert (
        f"documents.Document: {total} rows ({total - total // 10} through the default manager)"
        in proc.stdout
    )
    assert "failed=0" in proc.stdout


def test_stopped_backend_fails_saying_so_and_lists_the_services(stack):
    compose("stop", "backend")
    try:
        rc, result = stack_info()
    finally:
        compose("up", "-d", "--wait", "backend")
    assert rc != 0
    assert result["msg"] == "cannot count records: service 'backend' is not running (state: exited)"
    states = {s["service"]: s["state"] for s in result["services"]}
    assert states == {"db": "running", "backend": "exited"}
