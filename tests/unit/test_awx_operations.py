"""AWX as it is run: what awx/configure.yml makes of awx/job_templates.yml.

No AWX is reachable here, so these tests read the data and the playbook, run
configure.yml's input checks alone (`--tags validate`, which stop before any
awx.awx task), the arguments configure.yml's awx.awx tasks would send
(rendered by ansible-playbook with the module swapped for debug), the
inventory source through ansible-inventory as AWX's sync does, the workflow's
failure playbook through ansible-playbook, and the credential type's
injectors rendered as AWX renders them, then read by boto3.
"""

import concurrent.futures
import datetime
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import zoneinfo

import pytest
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
with open(os.path.join(ROOT, "awx", "job_templates.yml")) as _handle:
    DATA = yaml.safe_load(_handle)
with open(os.path.join(ROOT, "awx", "configure.yml")) as _handle:
    CONFIGURE = yaml.safe_load(_handle)[0]
with open(os.path.join(ROOT, "roles", "preflight", "defaults", "main.yml")) as _handle:
    PREFLIGHT = yaml.safe_load(_handle)
with open(os.path.join(ROOT, "roles", "backup", "defaults", "main.yml")) as _handle:
    BACKUP = yaml.safe_load(_handle)


class Unsafe(str):
    """A string Ansible leaves unrendered (YAML tag !unsafe)."""


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!unsafe", lambda loader, node: Unsafe(loader.construct_scalar(node)))
with open(os.path.join(ROOT, "awx", "credential_types.yml")) as _handle:
    CREDENTIAL_TYPES = {
        t["name"]: t for t in yaml.load(_handle, Loader=_Loader)["edms_credential_types"]
    }
BUCKET = "EDMS Copy Bucket"
DECRYPTION = "EDMS Archive Decryption Key"
TEMPLATES = {t["name"]: t for t in DATA["edms_job_templates"]}
WORKFLOW = DATA["edms_workflow"]
NODES = {node["identifier"]: node for node in WORKFLOW["nodes"]}
FAILURE = "EDMS Workflow Failure"
# What a nightly backup may take beyond its start, as the freshness default's
# own reckoning says (roles/preflight/defaults/main.yml: a day and two hours).
BACKUP_RUN_HOURS = 2


def tasks_using(module):
    found = [task for task in CONFIGURE["tasks"] if module in task]
    assert found, module
    return found


def sent_to_awx(module, extra_vars, tmp_path):
    """The arguments configure.yml's task with `module` would send, one per
    loop item: the task run by ansible-playbook with configure.yml's vars and
    vars_files, its module swapped for debug (whose msg is templated as module
    arguments are), its result written out as JSON."""
    (task,) = tasks_using(module)
    probe = {k: v for k, v in task.items() if k != module}
    probe["ansible.builtin.debug"] = {"msg": task[module]}
    probe["register"] = "__sent"
    out = tmp_path / "sent.json"
    play = {
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars_files": [os.path.join(ROOT, "awx", name) for name in CONFIGURE["vars_files"]],
        "vars": CONFIGURE["vars"],
        "tasks": [
            probe,
            {
                "ansible.builtin.copy": {
                    "content": (
                        "{{ __sent.results | default([__sent]) | map(attribute='msg') | to_json }}"
                    ),
                    "dest": str(out),
                    "mode": "0600",
                }
            },
        ],
    }
    playbook = tmp_path / "probe.yml"
    playbook.write_text(yaml.safe_dump([play]))
    proc = run([os.path.join(BIN, "ansible-playbook"), str(playbook), "-e", json.dumps(extra_vars)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


def run(args, env=None, check=False):
    """args run from the repository; configure.yml's secrets come only from env."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("EDMS_AWX_")}
    return subprocess.run(
        args,
        cwd=ROOT,
        env={**base, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), **(env or {})},
        capture_output=True,
        text=True,
        check=check,
    )


# --- launch prompts and become ---------------------------------------------


def test_every_template_and_the_workflow_ask_for_a_limit_on_launch():
    defaults = DATA["edms_job_template_defaults"]
    assert defaults["ask_limit_on_launch"] is True
    # The credential prompt is how an operator brings a privilege escalation
    # password asked at launch; extra variables stay behind the surveys.
    assert defaults["ask_credential_on_launch"] is True
    assert defaults["ask_variables_on_launch"] is False
    for template in DATA["edms_job_templates"]:
        assert set(template) & set(defaults) == set(), template["name"]
    assert WORKFLOW["ask_limit_on_launch"] is True
    (task,) = tasks_using("awx.awx.job_template")
    for key in defaults:
        assert task["awx.awx.job_template"][key] == f"{{{{ edms_job_template_defaults.{key} }}}}"
    (task,) = tasks_using("awx.awx.workflow_job_template")
    assert task["awx.awx.workflow_job_template"]["ask_limit_on_launch"] == (
        "{{ edms_workflow.ask_limit_on_launch }}"
    )


def test_become_only_for_the_step_that_needs_root():
    become = {name for name, t in TEMPLATES.items() if t["become_enabled"] is True}
    assert all(isinstance(t["become_enabled"], bool) for t in TEMPLATES.values())
    # No play runs as root: the archives, the lock and the compose file stay
    # the service user's. Storage's one step that chowns the backup directory
    # to the container's user becomes root through storage_become.
    assert become == set()
    (question,) = [
        q for q in TEMPLATES["EDMS Storage"]["survey"] if q["variable"] == "storage_become"
    ]
    assert question["choices"] == ["false", "true"]
    with open(os.path.join(ROOT, "roles", "storage", "tasks", "apply.yml")) as handle:
        assert 'become: "{{ storage_become | bool }}"' in handle.read()
    (task,) = tasks_using("awx.awx.job_template")
    assert task["awx.awx.job_template"]["become_enabled"] == "{{ item.become_enabled }}"


def test_the_templates_the_lock_refusals_name_exist_and_ask_for_their_confirmation():
    from ansible_collections.edms.backup.plugins.module_utils._commands import lock

    for command, confirm in (
        (lock.unlock_command("edms-staging"), "edms_unlock_confirm"),
        (lock.recovery_command("edms-staging"), "edms_restore_confirm"),
    ):
        (name,) = re.findall(r"AWX: the job template (EDMS [A-Za-z ]+)\)", command)
        template = TEMPLATES[name]
        (playbook,) = re.findall(r"playbooks/(\w+\.yml)", command)
        with open(os.path.join(ROOT, template["playbook"])) as handle:
            (play,) = yaml.safe_load(handle)
        assert play["ansible.builtin.import_playbook"] == "edms.backup." + playbook[:-4]
        assert f"installed collection: edms.backup.{playbook[:-4]};" in command
        (question,) = [q for q in template["survey"] if q["variable"] == confirm]
        # Launched unconfirmed, it shows and changes nothing.
        assert question["required"] is False, name


def test_prepare_host_runs_the_host_role_as_the_service_user():
    template = TEMPLATES["EDMS Prepare Host"]
    assert template["spec"] == {"role": "host", "entry": "main"}
    assert template["become_enabled"] is False
    with open(os.path.join(ROOT, template["playbook"])) as handle:
        (play,) = yaml.safe_load(handle)
    assert play["ansible.builtin.import_playbook"] == "edms.backup.prepare_host"


# --- notification on failure -----------------------------------------------


def test_every_job_template_the_workflow_and_the_syncs_notify_on_failure():
    name = DATA["edms_notification"]["name"]
    assert CONFIGURE["vars"]["__notification"] == (
        "{{ [awx_notification_name | default(edms_notification.name, true)] }}"
    ), name
    for module in (
        "awx.awx.job_template",
        "awx.awx.workflow_job_template",
        "awx.awx.project",
        "awx.awx.inventory_source",
    ):
        for task in tasks_using(module):
            assert task[module]["notification_templates_error"] == "{{ __notification }}", module
    (task,) = tasks_using("awx.awx.job_template")
    assert task["loop"] == "{{ edms_job_templates }}"
    assert "when" not in task
    (task,) = tasks_using("awx.awx.notification_template")
    assert task["no_log"] is True
    assert task["awx.awx.notification_template"]["name"] == "{{ __notification[0] }}"
    assert set(task["vars"]["__configuration"]) == {"email", "webhook"}
    spec = CONFIGURE["tasks"][0]["ansible.builtin.validate_argument_spec"]["argument_spec"]
    assert spec["awx_notification_type"]["required"] is True
    assert spec["awx_notification_type"]["choices"] == ["email", "webhook"]


# --- schedules ---------------------------------------------------------------

# The form AWX stores and accepts: DTSTART with a time zone, one space, RRULE.
RRULE = re.compile(
    r"^DTSTART;TZID=(?P<tz>[A-Za-z_]+(?:/[A-Za-z_+-]+)*):(?P<start>\d{8}T\d{6}) "
    r"RRULE:(?P<rule>FREQ=(?:DAILY|WEEKLY)(?:;(?:INTERVAL=[1-9]\d*|BYDAY=(?:MO|TU|WE|TH|FR|SA|SU)"
    r"(?:,(?:MO|TU|WE|TH|FR|SA|SU))*|BYHOUR=\d{1,2}(?:,\d{1,2})*|BYMINUTE=\d{1,2}(?:,\d{1,2})*))*)$"
)
DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


def occurrences(rrule, days=28):
    """The schedule's starts over `days` days, as aware datetimes (a strict
    reading of the DAILY and WEEKLY rules these schedules use)."""
    match = RRULE.match(rrule)
    assert match, rrule
    zone = zoneinfo.ZoneInfo(match["tz"])
    start = datetime.datetime.strptime(match["start"], "%Y%m%dT%H%M%S").replace(tzinfo=zone)
    parts = dict(part.split("=") for part in match["rule"].split(";"))
    assert len(parts) == match["rule"].count(";") + 1, f"a part is repeated: {rrule}"
    interval = int(parts.get("INTERVAL", 1))
    hours = [int(h) for h in parts.get("BYHOUR", str(start.hour)).split(",")]
    minutes = [int(m) for m in parts.get("BYMINUTE", str(start.minute)).split(",")]
    assert all(0 <= h < 24 for h in hours), rrule
    assert all(0 <= m < 60 for m in minutes), rrule
    weekdays = [DAYS.index(d) for d in parts["BYDAY"].split(",")] if "BYDAY" in parts else None
    found = []
    for offset in range(days):
        day = start.date() + datetime.timedelta(days=offset)
        if parts["FREQ"] == "DAILY":
            if offset % interval or (weekdays is not None and day.weekday() not in weekdays):
                continue
        else:
            if (offset // 7) % interval or day.weekday() not in (weekdays or [start.weekday()]):
                continue
        for hour in hours:
            for minute in minutes:
                when = datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=zone)
                if when >= start:
                    found.append(when)
    return sorted(found)


def longest_gap_hours(times):
    return max((b - a).total_seconds() / 3600 for a, b in itertools.pairwise(times))


def runs_a_backup(name):
    if name in TEMPLATES:
        return name == "EDMS Backup"
    assert name == WORKFLOW["name"], name
    roots = set(NODES) - {
        child["identifier"]
        for node in WORKFLOW["nodes"]
        for children in node.get("related", {}).values()
        for child in children
    }
    return any(NODES[root]["unified_job_template"]["name"] == "EDMS Backup" for root in roots)


@pytest.mark.parametrize("schedule", DATA["edms_schedules"], ids=lambda s: s["name"])
def test_each_schedule_is_an_rrule_awx_reads_for_a_template_that_exists(schedule):
    assert RRULE.match(schedule["rrule"]), schedule["rrule"]
    assert schedule["unified_job_template"] in set(TEMPLATES) | {WORKFLOW["name"]}
    assert len(occurrences(schedule["rrule"])) >= 4
    # configure.yml's own check of a replacement accepts what the data holds.
    assert re.match(CONFIGURE["vars"]["__rrule_pattern"], schedule["rrule"]), schedule["rrule"]


def test_the_schedules_keep_the_deployments_time_zone():
    with open(os.path.join(ROOT, "inventories", "staging", "group_vars", "edms.yml")) as handle:
        zone = yaml.safe_load(handle)["edms_display_timezone"]
    for schedule in DATA["edms_schedules"]:
        assert RRULE.match(schedule["rrule"])["tz"] == zone, schedule["name"]


def test_a_backup_runs_often_enough_for_the_freshness_check():
    limit = PREFLIGHT["preflight_max_backup_age_hours"]
    backups = [s for s in DATA["edms_schedules"] if runs_a_backup(s["unified_job_template"])]
    assert backups, "no schedule runs a backup"
    times = sorted(t for s in backups for t in occurrences(s["rrule"]))
    # The newest verified backup is at most the gap plus a run's time old.
    assert longest_gap_hours(times) + BACKUP_RUN_HOURS <= limit, (longest_gap_hours(times), limit)
    assert any("nightly" in s["name"] for s in backups)
    # ...and the nightly archives are labelled so.
    if backups[0]["unified_job_template"] == WORKFLOW["name"]:
        assert NODES["backup"]["extra_data"]["backup_label"] == "nightly"


def test_the_preflight_runs_daily_after_the_backup():
    schedules = DATA["edms_schedules"]
    (preflight,) = [s for s in schedules if s["unified_job_template"] == "EDMS Preflight"]
    checks = occurrences(preflight["rrule"])
    assert longest_gap_hours(checks) <= 24
    backups = sorted(
        t
        for s in DATA["edms_schedules"]
        if runs_a_backup(s["unified_job_template"])
        for t in occurrences(s["rrule"])
    )
    # Each check comes after a backup had time to finish, and a night without
    # a backup is caught by the next morning's check at the latest.
    limit = PREFLIGHT["preflight_max_backup_age_hours"]
    for check in checks[1:]:
        before = [b for b in backups if b <= check]
        since = (check - before[-1]).total_seconds() / 3600
        assert BACKUP_RUN_HOURS <= since < limit, (check, since)
        assert since + 24 > limit, "a missed night would not fail the next check"


# --- inventory from the project ----------------------------------------------


def test_the_inventory_source_is_the_projects_staging_inventory():
    source = DATA["edms_inventory"]["source"]
    path = source["source_path"]
    assert path == "inventories/staging"
    assert os.path.isdir(os.path.join(ROOT, path))
    assert source["overwrite"] is True
    assert source["overwrite_vars"] is True
    (task,) = tasks_using("awx.awx.inventory_source")
    module = task["awx.awx.inventory_source"]
    assert module["source"] == "scm"
    assert module["source_project"] == "{{ __project }}"
    assert module["source_path"] == "{{ __inventory_source_path }}"
    assert module["inventory"] == "{{ __inventory }}"
    assert CONFIGURE["vars"]["__inventory_source_path"] == (
        "{{ awx_inventory_source_path | default(edms_inventory.source.source_path) }}"
    )
    # The job templates and the workflow use that inventory.
    (task,) = tasks_using("awx.awx.job_template")
    assert task["awx.awx.job_template"]["inventory"] == "{{ __inventory }}"
    (task,) = tasks_using("awx.awx.workflow_job_template")
    assert task["awx.awx.workflow_job_template"]["inventory"] == "{{ __inventory }}"


def test_the_inventory_sync_yields_the_edms_hosts_with_their_variables():
    """What AWX's sync runs (ansible-inventory on the source path) gives every
    host of the edms group the inputs the surveys leave to the inventory."""
    path = DATA["edms_inventory"]["source"]["source_path"]
    proc = run([os.path.join(BIN, "ansible-inventory"), "-i", path, "--list"], check=True)
    listing = yaml.safe_load(proc.stdout)
    hosts = listing["edms"]["hosts"]
    assert hosts
    for host in hosts:
        variables = listing["_meta"]["hostvars"][host]
        for name in ("edms_project_dir", "edms_backup_dir", "edms_archive_dir"):
            assert variables.get(name, "").startswith("/"), (host, name)


# --- the workflow's failure paths --------------------------------------------


def test_every_step_of_the_workflow_has_a_failure_path_that_names_it_and_fails():
    steps = [n for n in WORKFLOW["nodes"] if n["unified_job_template"]["name"] != FAILURE]
    assert [n["identifier"] for n in steps] == ["backup", "verify", "copy", "rehearse"]
    parents = {}
    for node in WORKFLOW["nodes"]:
        related = node.get("related", {})
        # AWX: a node has always_nodes only, or success/failure nodes only.
        assert not (related.get("always_nodes") and set(related) - {"always_nodes"})
        for children in related.values():
            for child in children:
                assert child["identifier"] in NODES, child
                assert child["identifier"] not in parents, "two parents"
                parents[child["identifier"]] = node["identifier"]
    for step in steps:
        (handler,) = step["related"]["failure_nodes"]
        target = NODES[handler["identifier"]]
        assert target["unified_job_template"] == {"name": FAILURE, "type": "job_template"}
        assert target["extra_data"] == {"edms_failed_step": step["identifier"]}
        # A handled failure leaves the workflow successful in AWX unless the
        # handler fails too: it is a leaf that always fails (tested below).
        assert not target.get("related"), target
        assert "always_nodes" not in step["related"]
    assert not [n for n in NODES if n not in parents and n != "backup"]
    (task,) = tasks_using("awx.awx.workflow_job_template")
    nodes = task["awx.awx.workflow_job_template"]["workflow_nodes"]
    assert "edms_workflow.nodes" in nodes
    assert "'organization': {'name': __organization}" in nodes


def test_node_extra_data_are_survey_answers_awx_accepts():
    for node in WORKFLOW["nodes"]:
        template = TEMPLATES[node["unified_job_template"]["name"]]
        questions = {q["variable"]: q for q in template["survey"]}
        for name, value in node.get("extra_data", {}).items():
            assert name in questions, (node["identifier"], name)
            if "choices" in questions[name]:
                assert value in questions[name]["choices"], (node["identifier"], name)


@pytest.mark.parametrize("step", ["backup", "verify", "copy", "rehearse"])
def test_the_failure_playbook_fails_naming_the_step_without_reaching_the_host(step):
    # An address nothing answers (TEST-NET-1): the failure must show even when
    # the host is unreachable, which is one way a step fails.
    proc = run(
        [
            os.path.join(BIN, "ansible-playbook"),
            *("-i", "edms-staging,", TEMPLATES[FAILURE]["playbook"]),
            *("-e", "ansible_host=192.0.2.1", "-e", f"edms_failed_step={step}"),
            *("-e", "edms_archive=/srv/edms-archives/edms-x.zip", "-e", "awx_workflow_job_id=42"),
        ],
        env={"ANSIBLE_TIMEOUT": "2"},
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert f"(workflow job 42) failed at its {step} step" in out
    assert "unreachable=0" in out
    assert "failed=1" in out
    if step != "backup":
        assert "/srv/edms-archives/edms-x.zip" in out


# --- the copy step and the bucket's credential --------------------------------


def test_the_workflow_copies_in_a_step_of_its_own_after_verify_before_rehearse():
    copy = NODES["copy"]
    assert copy["unified_job_template"] == {"name": "EDMS Copy", "type": "job_template"}
    # Only an archive that verified on its own is copied; the copy does not
    # wait for the rehearsal, nor depend on it.
    assert NODES["verify"]["related"]["success_nodes"] == [{"identifier": "copy"}]
    assert copy["related"]["success_nodes"] == [{"identifier": "rehearse"}]
    assert copy["related"]["failure_nodes"] == [{"identifier": "copy-failed"}]
    # The copy node copies the newest verified archive: the one the backup
    # node made (copy_archive is a file name the workflow cannot know).
    assert "extra_data" not in copy
    (question,) = TEMPLATES["EDMS Copy"]["survey"]
    assert question["variable"] == "copy_archive"
    assert question["required"] is False
    assert question["default"] == ""
    # ...and the backup node does not copy as well (playbooks/backup.yml
    # would, after every backup, when destinations are set): a copy that
    # fails is then named the copy step's failure, never the backup's.
    assert NODES["backup"]["extra_data"]["backup_copy"] == "false"
    (question,) = [q for q in TEMPLATES["EDMS Backup"]["survey"] if q["variable"] == "backup_copy"]
    assert question["default"] == "true"
    assert BACKUP["backup_copy"] is True
    template = TEMPLATES["EDMS Copy"]
    with open(os.path.join(ROOT, template["playbook"])) as handle:
        (play,) = yaml.safe_load(handle)
    assert play["ansible.builtin.import_playbook"] == "edms.backup.copy"
    assert template["spec"] == {"role": "copy", "entry": "main"}
    assert template["become_enabled"] is False


def copy_task_runs(cases, check_mode):
    """Whether playbooks/backup.yml's copy task runs, by its own `when`, for
    each case's variables (a play each, as the survey's answers would set them)."""
    with open(os.path.join(ROOT, "playbooks", "backup.yml")) as handle:
        (play,) = yaml.safe_load(handle)
    (task,) = [
        t
        for t in play["tasks"]
        if t.get("ansible.builtin.include_role", {}).get("name") == "edms.backup.copy"
    ]
    plays = [
        {
            "name": f"case {name}",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": variables,
            "tasks": [
                {"ansible.builtin.debug": {"msg": f"COPY RUNS {name}"}, "when": task["when"]}
            ],
        }
        for name, variables in cases.items()
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "when.yml")
        with open(path, "w") as handle:
            yaml.safe_dump(plays, handle)
        proc = run(
            [os.path.join(BIN, "ansible-playbook"), path, *(["--check"] if check_mode else [])]
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {name for name in cases if f"COPY RUNS {name}" in proc.stdout}


def test_backup_yml_copies_unless_backup_copy_is_false_as_the_workflow_answers():
    where = [{"name": "offsite", "kind": "s3", "bucket": "edms-copies"}]
    cases = {
        "default": {"edms_copy_destinations": where},
        "survey-true": {"edms_copy_destinations": where, "backup_copy": "true"},
        "workflow-false": {"edms_copy_destinations": where, "backup_copy": "false"},
        "bool-false": {"edms_copy_destinations": where, "backup_copy": False},
        "no-destinations": {},
        "none-and-true": {"edms_copy_destinations": [], "backup_copy": "true"},
    }
    assert copy_task_runs(cases, check_mode=False) == {"default", "survey-true"}
    assert copy_task_runs(cases, check_mode=True) == set()
    # The case that does not copy is the workflow's own answer.
    assert cases["workflow-false"]["backup_copy"] == NODES["backup"]["extra_data"]["backup_copy"]


def awx_injects(credential_type, inputs):
    """The environment AWX gives a job for a credential of this type, rendered
    as AWX's CredentialType.inject_credential does: each env injector in a
    Jinja2 sandbox, with the inputs that are set (not empty) in its namespace."""
    sandbox = ImmutableSandboxedEnvironment()
    namespace = {name: value for name, value in inputs.items() if value}
    return {
        name: sandbox.from_string(template).render(**namespace)
        for name, template in credential_type["injectors"]["env"].items()
    }


# A request to a bucket as archive_bucket's client() signs it, stopped before
# it leaves the process: its headers, or the error that stopped the signing.
SIGNED = """
import json, sys
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_bucket import client

class Sent(Exception):
    pass

def stop(request, **kwargs):
    raise Sent({k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})

s3 = client(json.loads(sys.argv[1]))
s3.meta.events.register("before-send.s3", stop)
try:
    s3.list_objects_v2(Bucket="edms-copies", Prefix="edms-staging/")
except Sent as sent:
    print(json.dumps(sent.args[0]))
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__}))
"""


def signed_request(destination, env, tmp_path):
    """The headers boto3 signs a request to `destination` with, in a process
    whose environment holds `env` and no other credential (no shared files, no
    instance metadata)."""
    proc = subprocess.run(
        [sys.executable, "-c", SIGNED, json.dumps(destination)],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "PYTHONPATH": os.path.join(ROOT, "collections"),
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_bucket_credential_type_injects_the_environment_boto3_reads():
    from botocore.credentials import EnvProvider

    kind = CREDENTIAL_TYPES[BUCKET]
    assert kind["kind"] == "cloud"
    fields = {field["id"]: field for field in kind["inputs"]["fields"]}
    assert list(fields) == ["access_key", "secret_key", "session_token"]
    assert all(field["type"] == "string" for field in fields.values())
    assert {name for name, field in fields.items() if field.get("secret")} == {
        "secret_key",
        "session_token",
    }
    assert kind["inputs"]["required"] == ["access_key", "secret_key"]
    # The environment only: extra variables are shown with the job's.
    assert set(kind["injectors"]) == {"env"}
    env = kind["injectors"]["env"]
    assert env == {
        EnvProvider.ACCESS_KEY: "{{ access_key }}",
        EnvProvider.SECRET_KEY: "{{ secret_key }}",
        "AWS_SESSION_TOKEN": "{{ session_token }}",
    }
    assert "AWS_SESSION_TOKEN" in EnvProvider.TOKENS
    assert not [name for name in env if name.startswith("ANSIBLE_")]  # AWX drops those
    # Tagged !unsafe: Ansible leaves them for AWX to render.
    assert all(isinstance(template, Unsafe) for template in env.values())
    # The copy role's spec points to it by name.
    with open(os.path.join(ROOT, "roles", "copy", "meta", "argument_specs.yml")) as handle:
        assert f"an AWX credential of type {BUCKET}" in " ".join(handle.read().split())


@pytest.mark.parametrize("token", ["", "IQoJb3JpZ2luX2VjEXAMPLE"], ids=["user-keys", "temporary"])
def test_boto3_signs_with_the_keys_the_bucket_credential_injects(token, tmp_path):
    inputs = {
        "access_key": "AKIAEDMSCOPYEXAMPLE",
        "secret_key": "wJalrXUtnFEMIsecretEXAMPLE",
        "session_token": token,
    }
    env = awx_injects(CREDENTIAL_TYPES[BUCKET], inputs)
    # AWX sets the token's variable even when empty; boto3 ignores it then.
    assert env == {
        "AWS_ACCESS_KEY_ID": "AKIAEDMSCOPYEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIsecretEXAMPLE",
        "AWS_SESSION_TOKEN": token,
    }
    # A destination of kind s3 without keys of its own, as the copy role
    # hands it to archive_bucket (access_key and secret_key omitted).
    destination = {"endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"}
    headers = signed_request(destination, env, tmp_path)
    assert "Credential=AKIAEDMSCOPYEXAMPLE/" in headers["Authorization"], headers
    if token:
        assert headers["X-Amz-Security-Token"] == token
    else:
        assert "X-Amz-Security-Token" not in headers
    # Without the credential nothing signs; keys the destination gives win.
    assert signed_request(destination, {}, tmp_path) == {"error": "NoCredentialsError"}
    own = {**destination, "access_key": "AKIAINVENTORYEXAMPLE", "secret_key": "vaulted"}
    headers = signed_request(own, env, tmp_path)
    assert "Credential=AKIAINVENTORYEXAMPLE/" in headers["Authorization"], headers


def test_configure_makes_the_credential_types_with_their_injectors_unrendered(tmp_path):
    sent = sent_to_awx("awx.awx.credential_type", BASE, tmp_path)
    assert [args["name"] for args in sent] == list(CREDENTIAL_TYPES)
    for args in sent:
        kind = CREDENTIAL_TYPES[args["name"]]
        assert args["kind"] == kind["kind"]
        assert args["inputs"] == kind["inputs"]
        # "{{ access_key }}" as written, for AWX to render at each launch.
        assert args["injectors"] == kind["injectors"]
        assert args["description"] == kind["description"]
    (task,) = tasks_using("awx.awx.credential_type")
    assert task["loop"] == "{{ edms_credential_types }}"
    assert "credential_types.yml" in CONFIGURE["vars_files"]


def names_the_copy_role(node):
    if isinstance(node, dict):
        return any(names_the_copy_role(value) for value in node.values())
    if isinstance(node, list):
        return any(names_the_copy_role(value) for value in node)
    return node == "edms.backup.copy"


def reaches_a_bucket(template):
    """The collection's playbook the template runs copies, or brings a copy,
    with the copy role (whose s3 tasks read the bucket's keys)."""
    with open(os.path.join(ROOT, template["playbook"])) as handle:
        plays = yaml.safe_load(handle)
    imported = [play.get("ansible.builtin.import_playbook") for play in plays]
    if imported != [imported[0]] or not imported[0]:
        return names_the_copy_role(plays)
    name = imported[0].removeprefix("edms.backup.")
    with open(os.path.join(ROOT, "playbooks", name + ".yml")) as handle:
        return names_the_copy_role(yaml.safe_load(handle))


@pytest.mark.parametrize("copy_credential", ["EDMS bucket", ""], ids=["given", "none"])
def test_the_bucket_credential_goes_to_the_templates_that_may_reach_a_bucket(
    copy_credential, tmp_path
):
    reaching = {name for name, template in TEMPLATES.items() if reaches_a_bucket(template)}
    assert reaching == {"EDMS Backup", "EDMS Verify", "EDMS Copy", "EDMS Rehearse", "EDMS Restore"}
    assert {name for name, t in TEMPLATES.items() if t.get("bucket_credential")} == reaching
    assert all(isinstance(t.get("bucket_credential", False), bool) for t in TEMPLATES.values())
    extra = {**BASE, "awx_project_scm_public": True, "awx_copy_credential": copy_credential}
    sent = sent_to_awx("awx.awx.job_template", extra, tmp_path)
    assert [args["name"] for args in sent] == list(TEMPLATES)
    for args in sent:
        bucket = [copy_credential] if copy_credential and args["name"] in reaching else []
        assert args["credentials"] == [BASE["awx_machine_credential"], *bucket], args["name"]
    spec = CONFIGURE["tasks"][0]["ansible.builtin.validate_argument_spec"]["argument_spec"]
    assert spec["awx_copy_credential"] == {
        "type": "str",
        "default": "",
        "description": spec["awx_copy_credential"]["description"],
    }


def test_the_decryption_key_credential_gives_the_run_edms_decryption_key():
    kind = CREDENTIAL_TYPES[DECRYPTION]
    (field,) = kind["inputs"]["fields"]
    assert field["id"] == "identity"
    assert field["secret"] is True
    assert field["multiline"] is True
    assert kind["inputs"]["required"] == ["identity"]
    assert set(kind["injectors"]) == {"extra_vars"}
    assert kind["injectors"]["extra_vars"] == {"edms_decryption_key": "{{ identity }}"}
    assert all(isinstance(t, Unsafe) for t in kind["injectors"]["extra_vars"].values())
    sandbox = ImmutableSandboxedEnvironment()
    secret = "AGE-SECRET-KEY-1EXAMPLE"
    rendered = sandbox.from_string(kind["injectors"]["extra_vars"]["edms_decryption_key"])
    assert rendered.render(identity=secret) == secret


def reads_contents(template):
    """The collection's playbook the template runs reads archives' contents:
    a module that takes decryption_key is called in it or in its roles."""
    with open(os.path.join(ROOT, template["playbook"])) as handle:
        plays = yaml.safe_load(handle)
    name = plays[0].get("ansible.builtin.import_playbook", "").removeprefix("edms.backup.")
    if not name:
        return False
    found = []
    with open(os.path.join(ROOT, "playbooks", name + ".yml")) as handle:
        found.append(handle.read())
    # The copy role reads contents only where it brings a copy back (bring.yml).
    roles = set(re.findall(r"edms\.backup\.(\w+)", found[0])) - {"copy"}
    if re.search(r"tasks_from: +bring", found[0]):
        found.append("decryption_key:")
    for role in roles:
        directory = os.path.join(ROOT, "roles", role, "tasks")
        if os.path.isdir(directory):
            for file_name in sorted(os.listdir(directory)):
                with open(os.path.join(directory, file_name)) as handle:
                    found.append(handle.read())
    return any("decryption_key:" in text for text in found)


@pytest.mark.parametrize("key_credential", ["EDMS age key", ""], ids=["given", "none"])
def test_the_decryption_key_goes_to_the_templates_that_read_contents_only(key_credential, tmp_path):
    reading = {name for name, template in TEMPLATES.items() if reads_contents(template)}
    assert reading == {
        "EDMS Verify",
        "EDMS Rehearse",
        "EDMS Restore",
        "EDMS Rollback",
        "EDMS Recover",
    }
    assert {name for name, t in TEMPLATES.items() if t.get("key_credential")} == reading
    extra = {**BASE, "awx_project_scm_public": True, "awx_decryption_credential": key_credential}
    sent = sent_to_awx("awx.awx.job_template", extra, tmp_path)
    for args in sent:
        key = [key_credential] if key_credential and args["name"] in reading else []
        assert args["credentials"] == [BASE["awx_machine_credential"], *key], args["name"]


# --- configure.yml's inputs ----------------------------------------------------

BASE = {
    "awx_project_scm_url": "https://git.example.org/it/edms-backup.git",
    "awx_machine_credential": "EDMS ssh",
    "awx_notification_type": "email",
    "awx_notification_email_recipients": ["ops@example.org"],
    "awx_notification_email_sender": "awx@example.org",
    "awx_notification_email_host": "smtp.example.org",
}
KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAAsecretpart\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
PARIS = "DTSTART;TZID=Europe/Paris:20260101T013000 RRULE:FREQ=DAILY;INTERVAL=1"
SSH_URL = "git@git.example.org:it/edms-backup.git"


ACCEPTED = {
    "public-https": ({"awx_project_scm_public": True}, {}),
    "own-inventory-kept": (
        {
            "awx_project_scm_public": True,
            "awx_inventory": "EDMS hosts",
            "awx_inventory_source_path": "",
        },
        {},
    ),
    "existing-credential": ({"awx_project_scm_credential": "Git deploy key"}, {}),
    "ssh-key-env": ({"awx_project_scm_url": SSH_URL}, {"EDMS_AWX_SCM_SSH_KEY": KEY}),
    "https-token-env": ({}, {"EDMS_AWX_SCM_TOKEN": "glpat-secrettoken"}),
    "webhook-and-a-new-time": (
        {
            "awx_project_scm_public": True,
            "awx_notification_type": "webhook",
            "awx_notification_webhook_url": "https://hooks.example.org/edms",
            "awx_schedule_rrules": {"EDMS nightly backup": PARIS},
        },
        {},
    ),
}
REFUSED = {
    "private-no-credential": ({}, {}, "0 were given. A private repository cannot sync"),
    "key-and-credential": (
        {"awx_project_scm_url": SSH_URL, "awx_project_scm_credential": "Git"},
        {"EDMS_AWX_SCM_SSH_KEY": KEY},
        "2 were given",
    ),
    "ssh-with-token": (
        {"awx_project_scm_url": SSH_URL},
        {"EDMS_AWX_SCM_TOKEN": "glpat-secrettoken"},
        "An ssh address",
    ),
    "https-with-key": ({}, {"EDMS_AWX_SCM_SSH_KEY": KEY}, "never with a key"),
    "key-path-not-key": (
        {"awx_project_scm_url": SSH_URL},
        {"EDMS_AWX_SCM_SSH_KEY": "/home/me/.ssh/id_secretpart"},
        "must hold the private key itself",
    ),
    "not-an-address": (
        {"awx_project_scm_url": "edms-backup", "awx_project_scm_public": True},
        {},
        "awx_project_scm_url must be",
    ),
    "no-notification-type": (
        {"awx_project_scm_public": True, "awx_notification_type": None},
        {},
        "awx_notification_type",
    ),
    "email-without-recipients": (
        {"awx_project_scm_public": True, "awx_notification_email_recipients": []},
        {},
        "needs awx_notification_email_recipients",
    ),
    "webhook-without-url": (
        {"awx_project_scm_public": True, "awx_notification_type": "webhook"},
        {},
        "needs awx_notification_webhook_url",
    ),
    "bad-rrule": (
        {
            "awx_project_scm_public": True,
            "awx_schedule_rrules": {"EDMS nightly backup": "every night at two"},
        },
        {},
        "a rule is written as AWX stores it",
    ),
    "own-inventory-unasked": (
        {"awx_project_scm_public": True, "awx_inventory": "EDMS hosts"},
        {},
        "names an inventory of your own",
    ),
    "inventory-outside-the-project": (
        {"awx_project_scm_public": True, "awx_inventory_source_path": "../elsewhere"},
        {},
        "must be a path inside the project",
    ),
}


@pytest.fixture(scope="module")
def validations():
    """configure.yml's input checks alone, for every case, four at a time
    (each run mostly waits); an unreachable controller address in case a
    task beyond the checks ever ran."""
    cases = {**{k: v[:2] for k, v in ACCEPTED.items()}, **{k: v[:2] for k, v in REFUSED.items()}}

    def check(case):
        extra, env = cases[case]
        extra = {k: v for k, v in {**BASE, **extra}.items() if v is not None}
        proc = run(
            [
                os.path.join(BIN, "ansible-playbook"),
                *("awx/configure.yml", "--tags", "validate", "-e", json.dumps(extra)),
            ],
            env={"CONTROLLER_HOST": "https://127.0.0.1:9", **env},
        )
        return proc.returncode, proc.stdout + proc.stderr

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(cases, pool.map(check, cases), strict=True))


@pytest.mark.parametrize("case", ACCEPTED)
def test_configure_accepts_complete_inputs(validations, case):
    returncode, out = validations[case]
    assert returncode == 0, out
    assert "awx.awx" not in out


@pytest.mark.parametrize("case", REFUSED)
def test_configure_refuses_incomplete_inputs_before_contacting_awx(validations, case):
    returncode, out = validations[case]
    assert returncode == 2, out
    assert REFUSED[case][2] in out, out
    assert "secretpart" not in out
    assert "secrettoken" not in out
    assert "awx.awx" not in out


def test_secrets_are_never_logged():
    spec = CONFIGURE["tasks"][0]["ansible.builtin.validate_argument_spec"]["argument_spec"]
    secret = {name for name in spec if re.search(r"key_data|unlock|token$|password", name)}
    assert secret == {
        "awx_scm_ssh_key_data",
        "awx_scm_ssh_key_unlock",
        "awx_scm_token",
        "awx_notification_email_password",
        "awx_notification_webhook_password",
    }
    assert all(spec[name]["no_log"] is True for name in secret)
    for module in ("awx.awx.credential", "awx.awx.notification_template"):
        (task,) = tasks_using(module)
        assert task["no_log"] is True, module
    # Every check comes before the first task that reaches AWX.
    tags = [("validate" in task.get("tags", [])) for task in CONFIGURE["tasks"]]
    assert tags == sorted(tags, reverse=True)
    assert all(
        not any(key.startswith("awx.awx.") for key in task)
        for task in CONFIGURE["tasks"]
        if "validate" in task.get("tags", [])
    )
