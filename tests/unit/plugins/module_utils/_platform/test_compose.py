import json

import pytest
from ansible_collections.edms.backup.plugins.module_utils._platform.compose import (
    ComposeError,
    ComposeProject,
    ServiceState,
    parse_ps_output,
    running_service,
    running_services,
)


def ps_row(service, state="running", health="healthy", cid="c1"):
    return {"Service": service, "State": state, "Health": health, "ID": cid, "Name": "x_" + service}


def test_reads_one_object_per_line():
    text = "\n".join(json.dumps(r) for r in [ps_row("db"), ps_row("backend", health="")])
    found = parse_ps_output(text)
    assert sorted(found) == ["backend", "db"]
    assert found["db"].healthy
    assert found["backend"].health is None
    assert found["backend"].healthy


def test_reads_the_older_array_form():
    found = parse_ps_output(json.dumps([ps_row("db", state="exited", health="")]))
    assert found["db"].state == "exited"
    assert not found["db"].running
    assert not found["db"].healthy


def test_unhealthy_running_container_is_not_healthy():
    found = parse_ps_output(json.dumps(ps_row("db", health="unhealthy")))
    assert found["db"].running
    assert not found["db"].healthy


def test_prefers_a_running_container_of_a_scaled_service():
    rows = [ps_row("worker", state="exited", cid="a"), ps_row("worker", cid="b")]
    found = parse_ps_output("\n".join(json.dumps(r) for r in rows))
    assert found["worker"].container_id == "b"


def test_empty_output_means_no_containers():
    assert parse_ps_output("  \n") == {}


@pytest.mark.parametrize("text", ["{not json", '{"State": "running"}'])
def test_unreadable_output_is_an_error(text):
    with pytest.raises(ComposeError):
        parse_ps_output(text)


def test_services_lists_defined_services_in_order_with_missing_ones():
    calls = []

    def runner(argv):
        calls.append(argv)
        if "config" in argv:
            return 0, "db\nbackend\nworker\n", ""
        return 0, json.dumps(ps_row("backend")) + "\n", ""

    project = ComposeProject(project_dir="/srv/app", files=["a.yml", "/etc/b.yml"], runner=runner)
    states = project.services()
    assert [s.service for s in states] == ["db", "backend", "worker"]
    assert [s.state for s in states] == ["missing", "running", "missing"]
    assert calls[0][:8] == [
        "docker",
        "compose",
        "--project-directory",
        "/srv/app",
        "-f",
        "/srv/app/a.yml",
        "-f",
        "/etc/b.yml",
    ]
    assert project.commands == [" ".join(c) for c in calls]


def test_a_failing_compose_call_names_the_command_and_the_cause():
    project = ComposeProject(
        project_dir="/srv/app", runner=lambda argv: (1, "", "no such file: x.yml\n")
    )
    with pytest.raises(
        ComposeError,
        match=r"'docker compose config --services' failed in /srv/app \(exit 1\): no such file",
    ):
        project.service_names()


def test_running_service_names_what_is_missing_or_stopped():
    found = parse_ps_output(json.dumps(ps_row("db", state="exited", health="")))
    services = [found["db"], ServiceState(service="backend", state="running")]
    assert running_service(services, "backend", "backend").service == "backend"
    with pytest.raises(
        ComposeError, match=r"^the db service 'db' is not running \(state: exited\)$"
    ):
        running_service(services, "db", "db")
    with pytest.raises(
        ComposeError, match=r"service 'web' is not defined \(services: db, backend\)"
    ):
        running_service(services, "web", "backend")


def compose_cli(defined, rows):
    """A runner that answers as `docker compose` does for the defined services
    and these ps rows: ps of named services fails on one that is not defined."""
    calls = []

    def runner(argv):
        calls.append(argv[argv.index("compose") + 1 :])
        args = calls[-1][2:]  # after --project-directory DIR (no -f here)
        if args[0] == "config":
            return 0, "\n".join(defined) + "\n", ""
        named = args[4:]
        for name in named:
            if name not in defined:
                return 1, "", f"no such service: {name}\n"
        wanted = [row for row in rows if not named or row["Service"] in named]
        return 0, "".join(json.dumps(row) + "\n" for row in wanted), ""

    return runner, calls


WANTED = [("backend", "backend"), ("db", "db")]


def test_running_services_asks_once_for_the_named_services():
    runner, calls = compose_cli(
        ["db", "backend", "worker"], [ps_row("db", cid="d"), ps_row("backend", cid="b")]
    )
    project = ComposeProject(project_dir="/srv/app", runner=runner)
    backend, db = running_services(project, WANTED)
    assert (backend.container_id, db.container_id) == ("b", "d")
    assert calls == [["--project-directory", "/srv/app", "ps", "--all", "--format", "json",
                      "backend", "db"]]  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "wanted", "message"),
    [
        (
            [ps_row("db"), ps_row("backend")],
            [("web", "backend"), ("db", "db")],
            r"^the backend service 'web' is not defined \(services: db, backend\)$",
        ),
        (
            [ps_row("db", state="exited"), ps_row("backend")],
            WANTED,
            r"^the db service 'db' is not running \(state: exited\)$",
        ),
        ([ps_row("db")], WANTED, r"^the backend service 'backend' is not running"),
    ],
)
def test_running_services_names_the_service_that_is_missing_or_stopped(rows, wanted, message):
    runner, calls = compose_cli(["db", "backend"], rows)
    project = ComposeProject(project_dir="/srv/app", runner=runner)
    with pytest.raises(ComposeError, match=message):
        running_services(project, wanted)
    assert [c[2] for c in calls[1:]] == ["config", "ps"]  # the whole list, to say which
