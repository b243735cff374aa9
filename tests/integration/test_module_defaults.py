"""The action group edms.backup.project through module_defaults, in a real play
against the demo stack: the project options given once, at play level, reach
the modules of the group, and the modules outside it are left alone."""

import json
import os

from .conftest import BIN, ROOT, TINY, ansible_env, run

PLAY = """
- name: The project options from module_defaults
  hosts: edms
  gather_facts: false
  module_defaults:
    group/edms.backup.project:
      project_dir: "{{ edms_project_dir }}"
      compose_files: "{{ edms_compose_files }}"
      backend_service: "{{ edms_backend_service }}"
      db_service: "{{ edms_db_service }}"
      django_settings_module: "{{ edms_django_settings_module | default(omit) }}"
  tasks:
    - name: Services and counts, with no project option on the task
      edms.backup.stack_info:
        count_models: [documents.Document, users.User]
      register: module_defaults_stack

    # Not in the group: module_defaults must not give it the project options.
    - name: The archives, a module outside the group
      edms.backup.archive_info:
        backup_dir: "{{ module_defaults_backups }}"
      register: module_defaults_archives

    - name: Keep both results for the test
      ansible.builtin.copy:
        content: "{{ {'stack': module_defaults_stack,
                      'archives': module_defaults_archives} | to_json }}"
        dest: "{{ module_defaults_out }}"
        mode: "0600"
"""


def test_a_play_gives_the_project_options_to_the_group_through_module_defaults(stack, tmp_path):
    playbook = tmp_path / "module_defaults.yml"
    playbook.write_text(PLAY)
    out = tmp_path / "results.json"
    backups = tmp_path / "backups"
    backups.mkdir()
    proc = run(
        [
            os.path.join(BIN, "ansible-playbook"),
            *("-i", os.path.join(ROOT, "inventories", "demo")),
            str(playbook),
            *("-e", f"module_defaults_out={out} module_defaults_backups={backups}"),
        ],
        env=ansible_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    results = json.loads(out.read_text())

    stack_result = results["stack"]
    services = {s["service"]: s for s in stack_result["services"]}
    assert set(services) == {"db", "backend"}
    assert services["backend"]["healthy"]
    assert services["db"]["healthy"]
    total = TINY["documents"]
    counts = stack_result["counts"]
    assert set(counts) == {"documents.Document", "users.User"}
    assert counts["documents.Document"] == {"rows": total, "visible": total - total // 10}
    assert counts["users.User"]["rows"] == TINY["users"]
    # The inventory's project and compose file, not the module's default
    # docker-compose.yml.
    commands = stack_result["commands"]
    assert any("/demo/run/docker-compose.prod.yml" in command for command in commands), commands
    assert not any("docker-compose.yml" in command for command in commands)

    archives = results["archives"]
    assert archives["archives"] == []
    assert archives["changed"] is False
