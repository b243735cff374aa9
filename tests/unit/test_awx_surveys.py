"""The AWX job templates (awx/job_templates.yml) against what their playbooks accept.

Every survey variable must be an input of the role entry point (or of the
playbook's validate_argument_spec) the job runs, with a compatible type, the
same choices and the same default; every question must be one AWX accepts.
"""

import os
import re
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
with open(os.path.join(ROOT, "awx", "job_templates.yml")) as _handle:
    TEMPLATES = yaml.safe_load(_handle)

# AWX survey question types, and the argument spec types an answer of each
# converts to (text answers to a list: comma-separated; multiple choice of
# "true"/"false" to a bool).
COMPATIBLE = {
    "text": {"str", "path", "list", "raw"},
    "textarea": {"str", "raw"},
    "password": {"str", "raw"},
    "integer": {"int"},
    "float": {"float"},
    "multiplechoice": {"str", "bool"},
    "multiselect": {"list"},
}
QUESTION_KEYS = {
    "question_name",
    "question_description",
    "variable",
    "type",
    "required",
    "default",
    "min",
    "max",
    "choices",
}
BOOL_WORDS = {"true": True, "false": False}


def spec_of(template):
    """The options the job's playbook validates its input against."""
    source = template["spec"]
    if "role" in source:
        path = os.path.join(ROOT, "roles", source["role"], "meta", "argument_specs.yml")
        with open(path) as handle:
            specs = yaml.safe_load(handle)["argument_specs"]
        return specs[source["entry"]]["options"]
    with open(os.path.join(ROOT, source["playbook"])) as handle:
        plays = yaml.safe_load(handle)
    for play in plays:
        for task in play.get("tasks", []):
            if "ansible.builtin.validate_argument_spec" in task:
                return task["ansible.builtin.validate_argument_spec"]["argument_spec"]
    raise AssertionError(f"{source['playbook']} has no validate_argument_spec task")


def questions():
    for template in TEMPLATES["edms_job_templates"]:
        for question in template["survey"]:
            yield pytest.param(template, question, id=f"{template['name']}:{question['variable']}")


def test_every_job_template_has_a_project_playbook_that_imports_the_collections():
    names = [t["name"] for t in TEMPLATES["edms_job_templates"]]
    assert names == [
        "EDMS Preflight",
        "EDMS Storage",
        "EDMS Application Backup",
        "EDMS Backup",
        "EDMS Verify",
        "EDMS Copy",
        "EDMS Rehearse",
        "EDMS Restore",
        "EDMS Rollback",
        "EDMS Recover",
        "EDMS Unlock",
        "EDMS Prepare Host",
        "EDMS Workflow Failure",
    ]
    for template in TEMPLATES["edms_job_templates"]:
        if template["name"] == "EDMS Workflow Failure":
            # AWX's own: the workflow's failure path, nothing of the collection's.
            assert os.path.isfile(os.path.join(ROOT, template["playbook"]))
            continue
        with open(os.path.join(ROOT, template["playbook"])) as handle:
            plays = yaml.safe_load(handle)
        imported = [play["ansible.builtin.import_playbook"] for play in plays]
        assert len(imported) == 1, template["name"]
        name = imported[0].removeprefix("edms.backup.")
        assert os.path.isfile(os.path.join(ROOT, "playbooks", name + ".yml")), imported


@pytest.mark.parametrize(("template", "question"), list(questions()))
def test_each_survey_question_is_an_input_of_the_playbook_with_a_compatible_type(
    template, question
):
    assert set(question) <= QUESTION_KEYS, set(question) - QUESTION_KEYS
    for key in ("question_name", "variable", "type", "required"):
        assert key in question, key
    options = spec_of(template)
    name = question["variable"]
    assert name in options, f"{name} is not an input of {template['spec']}"
    option = options[name]
    spec_type = option.get("type", "str")
    assert spec_type in COMPATIBLE[question["type"]], (name, question["type"], spec_type)
    if option.get("required"):
        assert question["required"], f"{name} is required by the spec but not by the survey"
    if "choices" in option:
        assert question["type"] in ("multiplechoice", "multiselect"), name
        assert sorted(question["choices"]) == sorted(option["choices"]), name
    if spec_type == "bool":
        assert sorted(question["choices"]) == ["false", "true"], name
    if question["type"] in ("multiplechoice", "multiselect") and "default" in question:
        assert question["default"] in question["choices"], name
    if "default" in option and "default" in question:
        default = question["default"]
        if spec_type == "bool":
            default = BOOL_WORDS[default]
        assert default == option["default"], (name, default, option["default"])
    if question["type"] in ("integer", "float") and "default" in question:
        assert question["min"] <= question["default"] <= question["max"], name


@pytest.mark.parametrize(
    "template", TEMPLATES["edms_job_templates"], ids=lambda t: t["name"].replace(" ", "_")
)
def test_each_survey_asks_each_variable_once_and_every_required_input(template):
    variables = [q["variable"] for q in template["survey"]]
    assert len(variables) == len(set(variables))
    options = spec_of(template)
    # Inputs the inventory holds (where the deployment is) are not asked.
    required = {
        name
        for name, option in options.items()
        if option.get("required") and not re.match(r"edms_(project|backup|archive)_dir$", name)
    }
    assert required <= set(variables), required - set(variables)


def test_the_workflow_runs_backup_verify_copy_rehearse_in_that_order():
    workflow = TEMPLATES["edms_workflow"]
    by_id = {node["identifier"]: node for node in workflow["nodes"]}
    order, node = [], by_id["backup"]
    while True:
        order.append(node["unified_job_template"]["name"])
        following = node.get("related", {}).get("success_nodes", [])
        if not following:
            break
        node = by_id[following[0]["identifier"]]
    assert order == ["EDMS Backup", "EDMS Verify", "EDMS Copy", "EDMS Rehearse"]
    known = {t["name"] for t in TEMPLATES["edms_job_templates"]}
    assert set(order) <= known


def test_configure_yml_passes_the_syntax_check_with_the_awx_modules():
    """awx/configure.yml resolves every awx.awx module (tools/collection-deps.sh)."""
    bin_dir = os.path.dirname(sys.executable)
    proc = subprocess.run(
        [os.path.join(bin_dir, "ansible-playbook"), "--syntax-check", "awx/configure.yml"],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "playbook: awx/configure.yml" in proc.stdout
