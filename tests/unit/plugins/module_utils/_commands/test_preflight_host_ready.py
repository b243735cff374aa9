"""Preflight on a host whose interpreter lacks the collection's libraries:
the finding host_ready, and nothing that asks Docker. No Docker here, and
none faked: the runner and the containers given would fail the test if
preflight reached them."""

import sys

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands import preflight_info
from ansible_collections.edms.backup.plugins.module_utils._platform import host
from ansible_collections.edms.backup.plugins.modules.preflight_info import argument_spec


class Untouchable:
    """Stands where Docker would be asked: any use fails the test."""

    def __call__(self, *args, **kwargs):
        raise AssertionError(f"preflight asked Docker: {args}")

    def __getattr__(self, name):
        raise AssertionError(f"preflight asked Docker: {name}")


def params(tmp_path):
    values = {name: spec.get("default") for name, spec in argument_spec().items()}
    values.update(
        project_dir=str(tmp_path / "absent-project"),
        backup_dir=str(tmp_path / "backups"),
        archive_dir=str(tmp_path / "archives"),
    )
    return values


def libraries(*missing):
    def importer(name):
        if name in missing:
            raise ModuleNotFoundError(f"No module named '{name}'")
        return sys.modules.get(name)

    return host.check_libraries(importer)


@pytest.fixture(autouse=True)
def no_engine(monkeypatch, tmp_path):
    """Should Docker be asked after all, no engine of this machine answers."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")


def findings(result):
    return {f["check"]: f for f in result["findings"]}


def test_without_docker_host_ready_is_an_error_and_nothing_asks_docker(tmp_path):
    result = preflight_info.preflight(
        params(tmp_path),
        runner=Untouchable(),
        containers=Untouchable(),
        libraries=libraries("docker", "psycopg2"),
    )
    found = findings(result)
    ready = found["host_ready"]
    assert ready["severity"] == "error"
    assert ready["message"].startswith(f"the modules run with {sys.executable} (Python ")
    assert "docker (required, ModuleNotFoundError: No module named 'docker';" in ready["message"]
    assert "psycopg2 (optional," in ready["message"]
    assert "ruamel.yaml" not in ready["message"]
    assert ready["fix"].startswith("run playbooks/prepare_host.yml on this host")
    assert "ansible_python_interpreter" in ready["fix"]
    assert result["findings"][0] is ready  # before anything else
    assert found["docker_checks"]["severity"] == "warning"
    assert "see host_ready" in found["docker_checks"]["message"]
    # The checks of the host alone still ran; none that needs Docker did.
    assert {"project_lock", "backup_dir", "archive_store", "backup_age"} <= set(found)
    assert not set(found) & {"services", "docker", "backend_probe", "backup_mount", "clocks"}
    assert "no container mounts it" not in found["archive_store"]["message"]
    assert result["ok"] is False
    assert result["errors"][0] is ready
    assert result["services"] == []
    assert result["commands"] == []
    assert result["execs"] == []


def test_without_ruamel_yaml_only_host_ready_is_an_error_and_docker_is_asked(tmp_path):
    class Asked(Exception):
        pass

    def runner(*args, **kwargs):
        raise Asked

    with pytest.raises(Asked):
        preflight_info.preflight(
            params(tmp_path) | {"project_dir": str(tmp_path)},
            runner=runner,
            libraries=libraries("ruamel.yaml"),
        )


def test_an_optional_library_missing_is_a_warning(tmp_path):
    found = findings(
        preflight_info.preflight(
            params(tmp_path), containers=Untouchable(), libraries=libraries("docker", "jmespath")
        )
    )
    assert found["host_ready"]["severity"] == "error"
    finding = preflight_info.Findings()
    assert preflight_info.check_host_ready(libraries("jmespath"), finding) is True
    assert [(f["check"], f["severity"]) for f in finding.items] == [("host_ready", "warning")]
    assert "jmespath (optional" in finding.items[0]["message"]


def test_a_ready_host_names_its_interpreter_and_versions():
    finding = preflight_info.Findings()
    assert preflight_info.check_host_ready(libraries(), finding) is True
    (ready,) = finding.items
    assert ready["severity"] == "ok"
    assert sys.executable in ready["message"]
    assert "docker " in ready["message"]
