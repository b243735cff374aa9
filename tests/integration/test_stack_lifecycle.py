"""The stack commands: up is idempotent, down leaves nothing of the project."""

import json
import os

from .conftest import (
    COMPOSE_FILE,
    DEMO,
    PROJECT,
    TINY,
    django_json,
    project_resources,
    run,
    stack_up,
)

STACK = os.path.join(DEMO, "bin", "stack")


def container_identities():
    ids = project_resources()["containers"]
    out = run(["docker", "inspect", *ids]).stdout
    return sorted(
        (c["Name"], c["Id"], c["Image"], c["State"]["StartedAt"], c["State"]["Status"])
        for c in json.loads(out)
    )


def document_count():
    return django_json(
        "from apps.documents.models import Document\nprint(Document._base_manager.count())"
    )


def test_stack_up_twice_changes_nothing(stack):
    before = container_identities()
    count_before = document_count()
    second = stack_up()
    assert container_identities() == before
    assert document_count() == count_before == TINY["documents"]
    assert "images: up to date" in second.stderr
    assert "engine: running, left as it is" in second.stderr
    assert '"seeded": false' in second.stderr


def test_down_removes_the_project_and_up_rebuilds_it(stack):
    try:
        run([STACK, "down"])
        assert project_resources() == {"containers": [], "networks": [], "volumes": []}
        # The deployment's compose file goes too: the next start is the checklist's state.
        assert not os.path.exists(COMPOSE_FILE)
        # Idempotent: a second teardown of nothing succeeds.
        run([STACK, "down"])
        # And the engine is still there for others.
        run(["docker", "info"])
    finally:
        stack_up()  # the modules after this one need the stack, whatever happened
    states = json.loads(
        "["
        + ",".join(
            run(
                [
                    "docker",
                    "ps",
                    "--filter",
                    f"label=com.docker.compose.project={PROJECT}",
                    "--format",
                    "{{json .}}",
                ]
            ).stdout.split("\n")[:-1]
        )
        + "]"
    )
    names = sorted(s["Names"] for s in states)
    assert names == ["edms_demo_backend", "edms_demo_db"]
    assert all("(healthy)" in s["Status"] for s in states), states
    assert document_count() == TINY["documents"]


def test_purge_keeps_this_checkouts_stack_and_clears_another_checkouts(stack):
    """CI's case: the engine still holds a stack whose .env this checkout lacks."""
    before = container_identities()
    kept = run([STACK, "purge"])
    assert "purge: this checkout's own stack" in kept.stderr
    assert container_identities() == before
    env_file = os.path.join(os.path.dirname(COMPOSE_FILE), ".env")
    purged = False
    try:
        os.remove(env_file)  # the volume stays, as another checkout's would
        refused = run([STACK, "up"], check=False)
        assert refused.returncode == 1
        assert "the volume edms-demo_pgdata exists but" in refused.stderr
        assert "demo/bin/stack purge" in refused.stderr
        # Refused before anything changed: no new secrets, the stack still runs.
        assert not os.path.exists(env_file)
        assert container_identities() == before
        done = run([STACK, "purge"])
        purged = True
        assert "purge: project edms-demo removed (2 container(s) found)" in done.stderr
        assert project_resources() == {"containers": [], "networks": [], "volumes": []}
        assert not os.path.exists(COMPOSE_FILE)
    finally:
        if not purged:  # failed before the purge: leave a working stack
            run([STACK, "purge"])
        stack_up()
    assert document_count() == TINY["documents"]
