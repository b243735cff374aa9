"""The operators' two ways in, run as they run them (`make packaging`).

A fresh clone: `git clone`, a virtual environment, and the playbooks run from
the clone against inventories/staging, with nothing made first (no `make
collection`): ansible.cfg's collections_path finds edms.backup through the
links committed in collections/ansible_collections/edms/backup.

The built tarball: `ansible-galaxy collection build`, `ansible-galaxy
collection install` into a collections path of its own, then the playbooks
by their FQCN (edms.backup.site...) and the roles (edms.backup.restore) from
a directory outside the repository, with no ansible.cfg of the repository.

Everything is `--syntax-check`, `ansible-inventory --list` or `ansible-galaxy`:
nothing connects to the staging host (its inventory holds a real address) and
nothing needs Docker. The clone is of HEAD: commit before running this.
HOME is a temporary directory, so that a collection installed in the
machine's ~/.ansible/collections can neither hide nor stand in for the one
tested.
"""

import json
import os
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
STAGING = os.path.join(ROOT, "inventories", "staging")
PLAYBOOKS = sorted(p for p in os.listdir(os.path.join(ROOT, "playbooks")) if p.endswith(".yml"))
ROLES = sorted(os.listdir(os.path.join(ROOT, "roles")))
with open(os.path.join(ROOT, "galaxy.yml")) as _handle:
    GALAXY = yaml.safe_load(_handle)
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"


def environment(home, **extra):
    """The caller's environment without any Ansible setting (the Makefile
    exports ANSIBLE_CONFIG, pointing at this checkout), the venv first on PATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(HOME=str(home), PATH=BIN + os.pathsep + env.get("PATH", ""), ANSIBLE_NOCOLOR="1")
    env.update(extra)
    return env


def run(command, cwd, env):
    proc = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, f"{' '.join(command)} (in {cwd}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def ansible(tool, *args, cwd, env):
    return run([os.path.join(BIN, tool), *args], cwd, env)


# --- A fresh clone ----------------------------------------------------------------


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A fresh clone of HEAD, as an operator makes it: nothing built, no venv in it."""
    base = tmp_path_factory.mktemp("clone")
    head = run(["git", "rev-parse", "HEAD"], ROOT, os.environ).strip()
    path = base / "edms-backup"
    run(["git", "clone", "-q", "--no-checkout", ROOT, str(path)], base, os.environ)
    run(["git", "checkout", "-q", "--detach", head], path, os.environ)
    home = base / "home"
    home.mkdir()
    assert not (path / "build").exists()
    return path, environment(home)


def test_the_clone_finds_the_collection_in_itself(clone):
    path, env = clone
    listing = json.loads(
        ansible("ansible-galaxy", "collection", "list", FQCN, "--format", "json", cwd=path, env=env)
    )
    found = {where: names for where, names in listing.items() if FQCN in names}
    assert list(found) == [str(path / "collections" / "ansible_collections")], listing
    assert found[str(path / "collections" / "ansible_collections")][FQCN]["version"] == str(
        GALAXY["version"]
    )


def test_the_site_playbook_passes_its_syntax_check_from_the_clone(clone):
    path, env = clone
    out = ansible(
        "ansible-playbook",
        *("-i", "inventories/staging", "playbooks/site.yml", "--syntax-check"),
        cwd=path,
        env=env,
    )
    assert "playbook: playbooks/site.yml" in out


def test_every_playbook_passes_its_syntax_check_from_the_clone(clone):
    path, env = clone
    playbooks = [f"playbooks/{name}" for name in PLAYBOOKS]
    # AWX's project playbooks import the collection's by FQCN.
    playbooks += sorted(
        f"awx/playbooks/{name}"
        for name in os.listdir(path / "awx" / "playbooks")
        if name.endswith(".yml")
    )
    out = ansible(
        "ansible-playbook",
        *("-i", "inventories/staging", "--syntax-check", *playbooks),
        cwd=path,
        env=env,
    )
    for playbook in playbooks:
        assert f"playbook: {playbook}" in out


def test_the_clone_documents_the_modules_and_roles(clone):
    """What the syntax check does not load (modules, roles included at run time)
    resolves too."""
    path, env = clone
    ansible("ansible-doc", f"{FQCN}.stack_info", cwd=path, env=env)
    out = ansible("ansible-doc", "-t", "role", f"{FQCN}.restore", cwd=path, env=env)
    for entry_point in ("main", "rollback", "recover"):
        assert f"ENTRY POINT: *{entry_point}*" in out, out[:2000]


def test_the_staging_inventory_reads_offline_with_every_required_variable(clone):
    path, env = clone
    inventory = json.loads(
        ansible("ansible-inventory", "-i", "inventories/staging", "--list", cwd=path, env=env)
    )
    hosts = inventory["edms"]["hosts"]
    assert hosts == ["edms-staging"], inventory
    variables = inventory["_meta"]["hostvars"]["edms-staging"]
    # Given per run on the command line, never in the inventory.
    per_run = {"edms_archive", "edms_restore_confirm"}
    for role in ROLES:
        with open(path / "roles" / role / "meta" / "argument_specs.yml") as handle:
            specs = yaml.safe_load(handle)["argument_specs"]
        for entry_point, spec in specs.items():
            for name, option in spec.get("options", {}).items():
                if option.get("required") and name not in per_run:
                    assert name in variables, f"{role} ({entry_point}) requires {name}"


# --- The built tarball, installed ----------------------------------------------


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    """The collection built from this work tree as `ansible-galaxy collection build` makes it."""
    base = tmp_path_factory.mktemp("dist")
    home = base / "home"
    home.mkdir()
    ansible(
        "ansible-galaxy",
        *("collection", "build", ROOT, "--output-path", str(base)),
        cwd=base,
        env=environment(home),
    )
    (built,) = base.glob("*.tar.gz")
    assert built.name == f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
    return built


def test_the_tarball_holds_the_collection_and_nothing_of_the_checkout(tarball):
    with tarfile.open(tarball) as archive:
        members = archive.getmembers()
    names = {member.name.rstrip("/") for member in members}
    for needed in (
        "MANIFEST.json",
        "FILES.json",
        "meta/runtime.yml",
        "playbooks/site.yml",
        "roles/restore/meta/argument_specs.yml",
        "plugins/modules/archive_create.py",
        "plugins/action/archive_create.py",
    ):
        assert needed in names, needed
    # No link at all: neither the links of collections/ nor anything else.
    assert [m.name for m in members if m.issym() or m.islnk()] == []
    top = {name.split("/", 1)[0] for name in names}
    left_out = {
        "collections",
        "build",
        ".venv",
        ".ansible",
        ".git",
        "tests",
        "demo",
        "lims",
        "inventories",
        "molecule",
        "ansible.cfg",
        "Makefile",
    }
    assert top & left_out == set(), sorted(top & left_out)
    assert not [name for name in names if "ansible_collections" in name or name.endswith(".tar.gz")]


@pytest.fixture(scope="module")
def installed(tmp_path_factory, tarball):
    """The tarball installed into a collections path of its own; a working
    directory outside the repository, with an empty ansible.cfg of its own
    (so that no ansible.cfg of the machine or the repository is read)."""
    base = tmp_path_factory.mktemp("installed")
    collections = base / "collections"
    outside = base / "operator"
    home = base / "home"
    outside.mkdir()
    home.mkdir()
    (outside / "ansible.cfg").write_text("[defaults]\n")
    env = environment(
        home,
        ANSIBLE_CONFIG=str(outside / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(collections),
    )
    ansible(
        "ansible-galaxy",
        *("collection", "install", str(tarball), "-p", str(collections)),
        cwd=outside,
        env=env,
    )
    target = collections / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert (target / "MANIFEST.json").is_file()
    assert not any(p.is_symlink() for p in target.rglob("*"))
    return outside, env, target


def test_the_site_playbook_passes_its_syntax_check_by_fqcn(installed):
    outside, env, target = installed
    out = ansible(
        "ansible-playbook", "-i", STAGING, f"{FQCN}.site", "--syntax-check", cwd=outside, env=env
    )
    assert f"playbook: {target}/playbooks/site.yml" in out


def test_every_playbook_passes_its_syntax_check_by_fqcn(installed):
    outside, env, target = installed
    shipped = sorted(p.name for p in (target / "playbooks").glob("*.yml"))
    assert shipped == PLAYBOOKS
    fqcns = [f"{FQCN}.{name.removesuffix('.yml')}" for name in shipped]
    out = ansible("ansible-playbook", "-i", STAGING, "--syntax-check", *fqcns, cwd=outside, env=env)
    for name in shipped:
        assert f"playbook: {target}/playbooks/{name}" in out


def test_a_playbook_of_ones_own_runs_the_roles_by_fqcn(installed):
    outside, env, _target = installed
    playbook = outside / "restore_and_more.yml"
    plays = [
        {
            "name": f"The role {FQCN}.{role}",
            "hosts": "edms",
            "gather_facts": False,
            "roles": [{"role": f"{FQCN}.{role}"}],
        }
        for role in ROLES
    ]
    playbook.write_text("---\n" + yaml.safe_dump(plays, sort_keys=False))
    out = ansible(
        "ansible-playbook", "-i", STAGING, playbook.name, "--syntax-check", cwd=outside, env=env
    )
    assert f"playbook: {playbook.name}" in out
    ansible("ansible-doc", f"{FQCN}.archive_verify", cwd=outside, env=env)


def test_awx_project_sync_installs_the_same_collection(tmp_path):
    """collections/requirements.yml (AWX's project sync) installs a build of the
    directory: the links of collections/ are not in it either."""
    collections = tmp_path / "collections"
    home = tmp_path / "home"
    home.mkdir()
    env = environment(home, ANSIBLE_COLLECTIONS_PATH=str(collections))
    ansible(
        "ansible-galaxy",
        *("collection", "install", "-r", "collections/requirements.yml", "-p", str(collections)),
        cwd=ROOT,
        env=env,
    )
    target = collections / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert (target / "FILES.json").is_file()
    assert not (target / "collections").exists()
    assert not any(p.is_symlink() for p in target.rglob("*"))
