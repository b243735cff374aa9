import difflib
import json
import os

import pytest
from ansible_collections.edms.backup.plugins.module_utils._platform.compose_file import (
    BindMount,
    ComposeEditError,
    MountConflict,
    edit_storage,
)
from ruamel.yaml import YAML

ROOT = os.path.dirname(
    os.path.dirname(
        os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        )
    )
)
TEMPLATE = os.path.join(ROOT, "demo", "docker-compose.prod.yml")
MOUNT = BindMount("./backups", "/app/backups")
ENV = {"BACKUP_DIR": "/app/backups"}


def edit(text, service="app", mount=MOUNT, environment=None, **kwargs):
    kwargs.setdefault("project_dir", "/srv/app")
    env = ENV if environment is None else environment
    result = edit_storage(text, service, mount, env, **kwargs)
    again = edit_storage(result.after, service, mount, env, **kwargs)
    # Idempotent: a second run changes nothing, byte for byte.
    assert again.after == result.after
    assert not again.changed
    assert again.actions == []
    return result


def added_lines(before, after):
    """The lines after adds to before; fails if anything was removed or changed."""
    matcher = difflib.SequenceMatcher(a=before.splitlines(True), b=after.splitlines(True))
    added = []
    for opcode in matcher.get_opcodes():
        tag, j1, j2 = opcode[0], opcode[3], opcode[4]
        assert tag in ("equal", "insert"), (tag, before, after)
        if tag == "insert":
            added.extend(after.splitlines(True)[j1:j2])
    return added


def data(text):
    return json.loads(json.dumps(YAML(typ="rt").load(text)))


# --- The demo template --------------------------------------------------------


def test_demo_template_gets_two_lines_and_keeps_everything_else():
    with open(TEMPLATE, encoding="utf-8") as handle:
        template = handle.read()
    result = edit(template, "backend")
    assert result.changed
    assert added_lines(template, result.after) == [
        "      BACKUP_DIR: /app/backups\n",
        "      - ./backups:/app/backups\n",
    ]
    # Each comment and blank line of the template is still there, in order.
    kept = [line for line in template.splitlines() if not line.strip() or "#" in line]
    seen = [line for line in result.after.splitlines() if not line.strip() or "#" in line]
    assert seen == kept
    assert "- media:/app/storage/media   # uploaded documents" in result.after
    assert result.actions == [
        "services.backend.volumes: add ./backups:/app/backups",
        "services.backend.environment: add BACKUP_DIR=/app/backups",
    ]
    backend = data(result.after)["services"]["backend"]
    assert backend["volumes"][-1] == "./backups:/app/backups"
    assert backend["environment"]["BACKUP_DIR"] == "/app/backups"
    assert data(result.after)["services"]["db"] == data(template)["services"]["db"]


def test_demo_template_other_services_untouched_when_editing_worker():
    with open(TEMPLATE, encoding="utf-8") as handle:
        template = handle.read()
    result = edit(template, "worker", environment={"BACKUP_DIR": "/app/backups"})
    assert data(result.after)["services"]["backend"] == data(template)["services"]["backend"]
    assert data(result.after)["services"]["worker"]["volumes"][-1] == "./backups:/app/backups"


# --- Environment --------------------------------------------------------------

LIST_ENV = """\
# top comment
services:
  app:
    image: x   # the image
    environment:
      - A=1    # first
      - "BACKUP_DIR=/var/old"

      - C=3
    volumes:
      - data:/data
"""


def test_environment_list_value_is_replaced_in_place_keeping_quotes():
    result = edit(LIST_ENV)
    assert '      - "BACKUP_DIR=/app/backups"\n' in result.after
    assert "/var/old" not in result.after
    assert "services.app.environment: set BACKUP_DIR=/app/backups (was /var/old)" in (
        result.actions
    )
    assert (
        '      - A=1    # first\n      - "BACKUP_DIR=/app/backups"\n\n      - C=3\n' in result.after
    )
    assert data(result.after)["services"]["app"]["environment"] == [
        "A=1",
        "BACKUP_DIR=/app/backups",
        "C=3",
    ]


def test_environment_list_gets_a_new_item_after_the_last():
    text = "services:\n  app:\n    environment:\n      - A=1\n    image: x\n"
    result = edit(text)
    assert result.after == (
        "services:\n  app:\n    environment:\n      - A=1\n      - BACKUP_DIR=/app/backups\n"
        "    image: x\n    volumes:\n      - ./backups:/app/backups\n"
    )


def test_environment_list_passthrough_variable_gets_a_value():
    text = "services:\n  app:\n    image: x\n    environment:\n      - BACKUP_DIR\n"
    result = edit(text)
    assert "      - BACKUP_DIR=/app/backups\n" in result.after
    assert any("passed through from the host" in a for a in result.actions)


MAP_ENV = """\
services:
  app:
    image: x
    environment:
      A: "1"            # quoted
      BACKUP_DIR: '/var/old'
      EMPTY:
"""


def test_environment_mapping_value_is_set_keeping_its_quote_style():
    result = edit(MAP_ENV, environment={"BACKUP_DIR": "/app/backups", "EMPTY": "x", "PORT": "5432"})
    assert "      BACKUP_DIR: '/app/backups'\n" in result.after
    assert "      EMPTY: x\n" in result.after
    # A value that would read as a number is quoted.
    assert '      PORT: "5432"\n' in result.after
    assert '      A: "1"            # quoted\n' in result.after
    env = data(result.after)["services"]["app"]["environment"]
    assert env == {"A": "1", "BACKUP_DIR": "/app/backups", "EMPTY": "x", "PORT": "5432"}
    assert "services.app.environment: set BACKUP_DIR=/app/backups (was /var/old)" in (
        result.actions
    )
    assert "services.app.environment: set EMPTY=x (unset)" in result.actions


def test_environment_value_already_right_changes_nothing():
    text = 'services:\n  app:\n    environment:\n      BACKUP_DIR: "/app/backups"\n'
    text += "    volumes: [./backups:/app/backups]\n"
    result = edit_storage(text, "app", MOUNT, ENV, project_dir="/srv/app")
    assert not result.changed
    assert result.after == text


def test_absent_environment_is_added_as_a_mapping():
    text = "services:\n  app:\n    image: x\n"
    result = edit(text)
    assert result.after == (
        "services:\n  app:\n    image: x\n    volumes:\n      - ./backups:/app/backups\n"
        "    environment:\n      BACKUP_DIR: /app/backups\n"
    )


def test_absent_environment_follows_the_list_style_of_other_services():
    text = "services:\n  db:\n    environment:\n      - X=1\n  app:\n    image: x\n"
    result = edit(text)
    assert "    environment:\n      - BACKUP_DIR=/app/backups\n" in result.after


def test_null_environment_and_volumes_are_filled():
    text = "services:\n  app:\n    image: x\n    volumes:\n    environment: ~  # none yet\n"
    result = edit(text)
    app = data(result.after)["services"]["app"]
    assert app["volumes"] == ["./backups:/app/backups"]
    assert app["environment"] == {"BACKUP_DIR": "/app/backups"}
    assert "# none yet" in result.after


def test_flow_collections_stay_flow():
    text = 'services:\n  app:\n    image: x\n    environment: {A: "1"}\n    volumes: ["d:/d"]\n'
    result = edit(text)
    assert '    environment: {A: "1", BACKUP_DIR: "/app/backups"}\n' in result.after
    assert '    volumes: ["d:/d", "./backups:/app/backups"]\n' in result.after


def test_empty_flow_collections_get_their_first_item():
    text = "services:\n  app:\n    environment: {}\n    volumes: []\n"
    result = edit(text)
    assert data(result.after)["services"]["app"] == {
        "environment": {"BACKUP_DIR": "/app/backups"},
        "volumes": ["./backups:/app/backups"],
    }


def test_several_variables_keep_their_order():
    text = "services:\n  app:\n    image: x\n    environment:\n      A: b\n"
    environment = {"BACKUP_DIR": "/app/backups", "YES_WORD": "yes", "SPACED": "a b: c"}
    result = edit(text, environment=environment)
    assert list(data(result.after)["services"]["app"]["environment"]) == [
        "A",
        "BACKUP_DIR",
        "YES_WORD",
        "SPACED",
    ]
    assert '      YES_WORD: "yes"\n' in result.after
    assert '      SPACED: "a b: c"\n' in result.after


def test_empty_environment_sets_no_variable():
    text = "services:\n  app:\n    image: x\n"
    result = edit(text, environment={})
    assert "environment" not in result.after


# --- Volumes ------------------------------------------------------------------


LONG = """\
services:
    app:
        image: x
        volumes:
            -   type: volume
                source: data
                target: /data   # the data
"""


def test_long_syntax_volumes_get_a_long_syntax_entry_at_their_indentation():
    result = edit(LONG)
    assert added_lines(LONG, result.after) == [
        "            -   type: bind\n",
        "                source: ./backups\n",
        "                target: /app/backups\n",
        "        environment:\n",
        "            BACKUP_DIR: /app/backups\n",
    ]


def test_long_syntax_mount_already_there_is_kept():
    text = (
        "services:\n  app:\n    volumes:\n      - type: bind\n        source: /srv/app/backups\n"
        "        target: /app/backups/\n    environment: [BACKUP_DIR=/app/backups]\n"
    )
    result = edit_storage(text, "app", MOUNT, ENV, project_dir="/srv/app")
    assert not result.changed


def test_long_syntax_with_options():
    text = "services:\n  app:\n    volumes:\n      - type: volume\n        source: d\n"
    text += "        target: /d\n"
    result = edit(text, mount=BindMount("./backups", "/app/backups", "rw,z"))
    entry = data(result.after)["services"]["app"]["volumes"][-1]
    assert entry == {
        "type": "bind",
        "source": "./backups",
        "target": "/app/backups",
        "bind": {"selinux": "z"},
    }


def test_short_syntax_options_must_match_when_given():
    text = "services:\n  app:\n    volumes:\n      - ./backups:/app/backups:z\n"
    with pytest.raises(MountConflict):
        edit_storage(text, "app", BindMount("./backups", "/app/backups", "rw"), ENV)
    result = edit(text, mount=BindMount("./backups", "/app/backups", "rw,z"))
    assert result.actions == ["services.app.environment: add BACKUP_DIR=/app/backups"]


def test_the_same_directory_written_absolute_counts_as_mounted():
    text = "services:\n  app:\n    volumes:\n      - /srv/app/backups/:/app/backups\n"
    result = edit(text)
    assert result.actions == ["services.app.environment: add BACKUP_DIR=/app/backups"]


def test_indentless_sequences_stay_indentless():
    text = "services:\n  app:\n    image: x\n    volumes:\n    - d:/d\n    ports:\n    - 80:80\n"
    result = edit(text)
    assert "    volumes:\n    - d:/d\n    - ./backups:/app/backups\n" in result.after


def test_new_volumes_follow_the_files_sequence_indentation():
    text = "services:\n  app:\n    image: x\n    ports:\n    - 80:80\n"
    result = edit(text)
    assert "    volumes:\n    - ./backups:/app/backups\n" in result.after


def test_new_item_copies_the_quotes_of_its_siblings():
    text = 'services:\n  app:\n    volumes:\n      - "d:/d"\n'
    result = edit(text)
    assert '      - "./backups:/app/backups"\n' in result.after


def test_a_mount_of_something_else_at_the_path_is_a_conflict_naming_it():
    text = "services:\n  app:\n    volumes:\n      - ./elsewhere:/app/backups  # old\n"
    with pytest.raises(MountConflict, match=r"already mounts '\./elsewhere:/app/backups'"):
        edit_storage(text, "app", MOUNT, ENV, filename="dc.yml")
    result = edit(text, replace=True)
    assert "      - ./backups:/app/backups  # old\n" in result.after
    assert result.actions[0] == (
        "services.app.volumes: replace ./elsewhere:/app/backups with ./backups:/app/backups"
    )


@pytest.mark.parametrize(
    "entry",
    [
        "backups:/app/backups",  # a named volume
        "./backups:/app/backups:ro",  # read-only
        "/app/backups",  # an anonymous volume
        "${HOST_DIR:-./backups}:/app/backups",  # cannot be resolved here
    ],
)
def test_other_mounts_at_the_path_are_conflicts(entry):
    text = f"services:\n  app:\n    volumes:\n      - {entry}\n"
    with pytest.raises(MountConflict, match=r"at /app/backups"):
        edit_storage(text, "app", MOUNT, ENV, project_dir="/srv/app")


def test_long_syntax_conflict_is_replaced_in_long_syntax():
    text = (
        "services:\n  app:\n    volumes:\n      - type: volume\n        source: old\n"
        "        target: /app/backups\n      - d:/d\n"
    )
    result = edit(text, replace=True)
    volumes = data(result.after)["services"]["app"]["volumes"]
    assert volumes == [
        {"type": "bind", "source": "./backups", "target": "/app/backups"},
        "d:/d",
    ]


# --- Layout -------------------------------------------------------------------


def test_comments_and_blank_lines_between_services_stay_in_place():
    text = (
        "---\n# head\nservices:\n  app:\n    image: x\n    restart: always   # keep\n\n"
        "  # The next service.\n  db:\n    image: y\n\n# tail\nvolumes:\n  d:\n"
    )
    result = edit(text)
    assert result.after == (
        "---\n# head\nservices:\n  app:\n    image: x\n    restart: always   # keep\n"
        "    volumes:\n      - ./backups:/app/backups\n"
        "    environment:\n      BACKUP_DIR: /app/backups\n\n"
        "  # The next service.\n  db:\n    image: y\n\n# tail\nvolumes:\n  d:\n"
    )


def test_a_block_scalar_at_the_end_of_the_service_is_not_extended():
    text = (
        "services:\n  app:\n    command: |\n      echo one\n      echo two\n\n  db:\n    image: y"
    )
    result = edit(text)
    app = data(result.after)["services"]["app"]
    assert app["command"] == "echo one\necho two\n"
    assert result.after.endswith("\n\n  db:\n    image: y")


def test_windows_line_endings_are_kept():
    text = "services:\r\n  app:\r\n    image: x\r\n    volumes:\r\n      - d:/d\r\n"
    result = edit(text)
    assert "\n" not in result.after.replace("\r\n", "")
    assert "      - ./backups:/app/backups\r\n" in result.after


def test_key_order_and_long_lines_are_kept():
    long_line = '    healthcheck: {test: ["CMD", "' + "x" * 150 + '"]}\n'
    text = "services:\n  app:\n    image: x\n" + long_line + "    ports: ['1:1']\n"
    result = edit(text)
    assert long_line in result.after
    assert "    ports: ['1:1']\n" in result.after
    assert list(data(result.after)["services"]["app"]) == [
        "image",
        "healthcheck",
        "ports",
        "volumes",
        "environment",
    ]


# --- Refusals -----------------------------------------------------------------


def test_unknown_service_is_named_with_the_services_there():
    with (
        pytest.raises(
            ComposeEditError,
            match=r"service 'web' is not defined in dc\.yml \(services: db, backend, worker\)",
        ),
        open(TEMPLATE, encoding="utf-8") as handle,
    ):
        edit_storage(handle.read(), "web", MOUNT, ENV, filename="dc.yml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "dc.yml is not a YAML mapping"),
        ("- a\n- b\n", "dc.yml is not a YAML mapping"),
        ("version: '3'\n", "dc.yml has no 'services' mapping"),
        ("services: [a]\n", "dc.yml has no 'services' mapping"),
        ("services:\n  app: [x]\n", "service 'app' in dc.yml is not a mapping"),
        ("services:\n  app:\n    image: [\n", "dc.yml is not valid YAML"),
        ("services:\n  app: {}\n---\nx: 1\n", "dc.yml holds more than one YAML document"),
        (
            "services:\n  app:\n    volumes: x\n",
            "'volumes' of service 'app' in dc.yml is not a list",
        ),
        (
            "services:\n  app:\n    environment: x\n",
            "'environment' of service 'app' in dc.yml is neither a mapping nor a list",
        ),
    ],
)
def test_files_that_are_not_compose_files_are_refused(text, message):
    with pytest.raises(ComposeEditError, match=message.replace("(", r"\(").replace(")", r"\)")):
        edit_storage(text, "app", MOUNT, ENV, filename="dc.yml")


def test_inherited_environment_is_refused():
    text = "x: &common\n  environment:\n    A: 1\nservices:\n  app:\n    <<: *common\n"
    with pytest.raises(ComposeEditError, match="inherited through a YAML merge key"):
        edit_storage(text, "app", MOUNT, ENV)


def test_shared_environment_is_refused():
    text = (
        "services:\n  app:\n    environment: &env\n      A: 1\n    volumes: []\n"
        "  db:\n    environment: *env\n"
    )
    with pytest.raises(ComposeEditError, match=r"anchored \(&env\) and reused elsewhere"):
        edit_storage(text, "app", MOUNT, ENV)
    text = "x-env: &env\n  A: 1\nservices:\n  app:\n    volumes: []\n    environment: *env\n"
    with pytest.raises(ComposeEditError, match=r"is an alias \(\*env\)"):
        edit_storage(text, "app", MOUNT, ENV)
    text = "services:\n  app: &app\n    image: x\n  copy:\n    <<: *app\n"
    with pytest.raises(ComposeEditError, match=r"service 'app' in .* is anchored \(&app\)"):
        edit_storage(text, "app", MOUNT, ENV)


@pytest.mark.parametrize(
    ("mount", "environment", "message"),
    [
        (BindMount("backups", "/app/backups"), ENV, "is not a path"),
        (BindMount("./backups", "app/backups"), ENV, "is not an absolute path"),
        (BindMount("./b:c", "/app/backups"), ENV, "must not contain ':'"),
        (BindMount("./backups", "/app/backups", "rw,exec"), ENV, "bind mount options"),
        (MOUNT, {"BAD NAME": "x"}, "not a valid environment variable name"),
        (MOUNT, {"N": 5}, "must be a string"),
    ],
)
def test_bad_inputs_are_refused(mount, environment, message):
    with pytest.raises(ComposeEditError, match=message):
        edit_storage("services:\n  app:\n    image: x\n", "app", mount, environment)
