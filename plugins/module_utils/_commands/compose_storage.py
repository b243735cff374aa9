# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The storage phase as plain Python: the backup directory made on the host,
the bind mount and BACKUP_DIR added to the service's compose file (through
_platform/compose_file.py, which keeps the file as its authors wrote it), the service
recreated, and the mount proven from inside the container.
"""

from __future__ import annotations

import difflib
import grp
import json
import os
import posixpath
import pwd
import re
import shlex
import shutil
import stat
import time
import uuid

from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._platform.compose import (
    ComposeError,
    ComposeProject,
    run_command,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.compose_file import (
    BindMount,
    ComposeEditError,
    MountConflict,
    edit_storage,
    mask_secrets,
    shown_value,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import (
    Containers,
    ExecError,
    describe,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.files import (
    temporary_name,
    write_atomically,
)


class StorageError(ModuleFailure):
    """A failure of the storage phase, with the part of the result gathered."""


def parse_mode(mode):
    """An octal mode given as a string ('0775', '775') or an int."""
    if isinstance(mode, int):
        return mode
    text = str(mode).strip()
    if not re.match(r"^0?[0-7]{3,4}$", text):
        raise StorageError(f"host_path_mode {mode!r} is not an octal mode such as '0775'")
    return int(text, 8)


def resolve_id(value, kind):
    """A user or group name or number on this host, as a number."""
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid if kind == "user" else grp.getgrnam(text).gr_gid
    except KeyError:
        raise StorageError(f"{kind} {text!r} does not exist on this host") from None


def backup_name(path, now=None):
    """A free name for a copy of path: <path>.<UTC time>.bak."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    candidate = f"{path}.{stamp}.bak"
    counter = 1
    while os.path.lexists(candidate):
        candidate = f"{path}.{stamp}.{counter}.bak"
        counter += 1
    return candidate


PROBE_SCRIPT = 'printf "%s" "$1" > "$2"'


class ComposeStorage:
    """The storage phase for one service of a Compose project.

    runner: (argv) -> (rc, stdout, stderr), for the docker CLI; containers: a
    _platform/docker.py Containers for execs. In check mode only reads run; the writes,
    the recreation and the proof are listed in commands and execs instead.
    """

    def __init__(self, params, runner=None, containers=None, check_mode=False, diff_mode=False):
        self.params = params
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.project_dir = params["project_dir"]
        self.files = list(params["compose_files"])
        self.service = params.get("service") or params["backend_service"]
        self.commands = []
        self.runner = runner or (lambda argv: run_command(argv, cwd=self.project_dir))
        self.compose = ComposeProject(
            project_dir=self.project_dir,
            files=self.files,
            runner=self.runner,
            commands=self.commands,
        )
        self._containers = containers
        self.execs = containers.execs if containers is not None else []
        self.result = {
            "changed": False,
            "actions": [],
            "backup_file": None,
            "commands": self.commands,
            "execs": self.execs,
            "proof": {"verified": False},
        }
        self.path = None
        self.file_index = 0
        self.host_dir = None
        self.edited = None

    # Helpers

    @property
    def containers(self):
        if self._containers is None:
            try:
                self._containers = Containers()
            except ExecError as exc:
                raise self.error(str(exc)) from exc
            self._containers.execs = self.execs
        return self._containers

    def error(self, msg):
        return StorageError(msg, **self.result)

    def docker(self, args, what):
        """Run the docker CLI; args must not print secrets (no env, no config)."""
        argv = ["docker", *args]
        self.commands.append(" ".join(argv))
        rc, out, err = self.runner(argv)
        if rc != 0:
            raise self.error(f"{what} failed (exit {rc}): {(err or '').strip()[-2000:]}")
        return out

    def plan(self, argv_or_text):
        """A command that would run in check mode."""
        self.commands.append(argv_or_text)

    def plan_exec(self, argv):
        self.execs.append({"container": f"<service {self.service}>", "command": describe(argv)})

    # Steps

    def locate(self):
        if not os.path.isdir(self.project_dir):
            raise self.error(f"project directory {self.project_dir} does not exist")
        name = self.params.get("compose_file") or (self.files[0] if self.files else None)
        if not name:
            raise self.error("compose_files is empty: there is no compose file to edit")
        path = os.path.normpath(os.path.join(self.project_dir, name))
        listed = [os.path.normpath(os.path.join(self.project_dir, f)) for f in self.files]
        if path not in listed:
            raise self.error(
                f"compose_file {name} is not one of compose_files ({', '.join(self.files)})"
            )
        if not os.path.isfile(path):
            raise self.error(f"compose file {path} does not exist")
        self.path = path
        self.file_index = listed.index(path)
        host = os.path.expanduser(self.params["host_path"])
        self.host_dir = os.path.normpath(os.path.join(self.project_dir, host))

    def edit(self):
        try:
            with open(self.path, encoding="utf-8", newline="") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise self.error(f"cannot read compose file {self.path}: {exc}") from exc
        mount = BindMount(
            host_path=self.params["host_path"],
            container_path=self.params["container_path"],
            mode=self.params.get("mount_mode") or None,
        )
        try:
            result = edit_storage(
                text,
                self.service,
                mount,
                environment=self.environment(),
                replace=self.params.get("replace_mount", False),
                project_dir=self.project_dir,
                filename=os.path.basename(self.path),
            )
        except MountConflict as exc:
            raise self.error(
                f"cannot edit {self.path}: {exc}. Remove or change that entry, or set"
                " replace_mount to replace it"
            ) from exc
        except ComposeEditError as exc:
            raise self.error(f"cannot edit {self.path}: {exc}") from exc
        self.edited = result
        self.result["actions"].extend(result.actions)
        if self.diff_mode:
            self.result["diff"] = {"prepared": self.diff(result)}
        return result

    def diff(self, result):
        """The change as a unified diff: only the lines that change and three
        around each, with the values of secrets masked (a compose file often
        holds passwords inline, and a diff goes to job logs)."""
        name = os.path.basename(self.path)
        lines = []
        for text in (result.before, result.after):
            masked = mask_secrets(text, name).splitlines(True)
            if masked and not masked[-1].endswith("\n"):
                masked[-1] += "\n\\ No newline at end of file\n"
            lines.append(masked)
        return "".join(
            difflib.unified_diff(
                lines[0], lines[1], fromfile=f"before: {self.path}", tofile=f"after: {self.path}"
            )
        )

    def environment(self):
        environment = self.params.get("environment")
        if environment is None:
            return {"BACKUP_DIR": self.params["container_path"]}
        values = {}
        for key, value in environment.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            values[str(key)] = "" if value is None else str(value)
        return values

    def service_container(self):
        try:
            states = self.compose.services()
        except ComposeError as exc:
            raise self.error(str(exc)) from exc
        state = next((s for s in states if s.service == self.service), None)
        if state is None:
            raise self.error(
                f"service '{self.service}' is not among the project's active services"
                f" ({', '.join(s.service for s in states)}); a service behind a profile"
                " that is not enabled is left out"
            )
        return state.container_id if state.running else None

    def inspect(self, container_id):
        """The container's user, image and mounts (never its environment)."""
        fmt = '{"user":{{json .Config.User}},"image":{{json .Image}},"mounts":{{json .Mounts}}}'
        out = self.docker(
            ["inspect", "--type", "container", "--format", fmt, container_id],
            f"reading the container of service '{self.service}'",
        )
        try:
            return json.loads(out.strip())
        except ValueError as exc:
            raise self.error(f"cannot read 'docker inspect' of {container_id[:12]}: {exc}") from exc

    def user_of(self, container_id):
        """The user the container runs as, as 'user' text, uid and gid."""
        info = self.inspect(container_id)
        user = info.get("user") or ""
        if not user and info.get("image"):
            out = self.docker(
                ["image", "inspect", "--format", "{{json .Config.User}}", info["image"]],
                f"reading the image of service '{self.service}'",
            )
            user = (json.loads(out.strip() or '""') or "").strip()
        ids = []
        for flag in ("-u", "-g"):
            try:
                answer = self.containers.exec(
                    container_id,
                    ["id", flag],
                    user=user or None,
                    what=f"'id {flag}' in service '{self.service}'",
                )
                ids.append(int(answer.stdout.decode().strip()))
            except (ExecError, ValueError) as exc:
                raise self.error(
                    f"cannot tell which user service '{self.service}' runs as: {exc};"
                    " set host_path_owner and host_path_group"
                ) from exc
        return {"user": user or "root", "uid": ids[0], "gid": ids[1], "mounts": info["mounts"]}

    def wanted_owner(self, runs_as):
        owner = self.params.get("host_path_owner")
        group = self.params.get("host_path_group")
        if (owner in (None, "") or group in (None, "")) and runs_as is None:
            raise self.error(
                f"cannot tell which user owns {self.host_dir}: service '{self.service}' has no"
                " running container to read its user from; start it or set host_path_owner"
                " and host_path_group"
            )
        uid = resolve_id(owner, "user") if owner not in (None, "") else runs_as["uid"]
        gid = resolve_id(group, "group") if group not in (None, "") else runs_as["gid"]
        return uid, gid

    def host_dir_plan(self, uid, gid, mode):
        path = self.host_dir
        state = {"path": path, "owner": uid, "group": gid, "mode": f"{mode:04o}"}
        todo = []
        try:
            st = os.stat(path)
        except FileNotFoundError:
            todo.append("create")
            self.result["actions"].append(
                f"host directory {path}: create (owner {uid}, group {gid}, mode {mode:04o})"
            )
            state["state"] = "created"
            return state, todo
        except OSError as exc:
            raise self.error(f"cannot read host directory {path}: {exc}") from exc
        if not stat.S_ISDIR(st.st_mode):
            raise self.error(f"host path {path} exists and is not a directory")
        if (st.st_uid, st.st_gid) != (uid, gid):
            todo.append("chown")
            self.result["actions"].append(
                f"host directory {path}: owner {st.st_uid}:{st.st_gid} -> {uid}:{gid}"
            )
        if stat.S_IMODE(st.st_mode) != mode:
            todo.append("chmod")
            self.result["actions"].append(
                f"host directory {path}: mode {stat.S_IMODE(st.st_mode):04o} -> {mode:04o}"
            )
        state["state"] = "changed" if todo else "ok"
        return state, todo

    def check_privilege(self, todo, uid, gid, mode):
        """Fail before any change when this user cannot give the host directory
        its owner, group or mode (only root can give a directory to another
        user), saying what to run instead."""
        euid = os.geteuid()
        if euid == 0 or not todo:
            return
        groups = {os.getegid(), *os.getgroups()}
        mine = uid == euid and gid in groups
        if ("chmod" in todo or "chown" in todo) and "create" not in todo:
            try:
                mine = mine and os.stat(self.host_dir).st_uid == euid
            except OSError:
                mine = False
        if mine:
            return
        try:
            user = pwd.getpwuid(euid).pw_name
        except KeyError:
            user = f"uid {euid}"
        path = shlex.quote(self.host_dir)
        raise self.error(
            f"cannot prepare host directory {self.host_dir} as {user}: it must belong to"
            f" uid {uid}, gid {gid} (the user service '{self.service}' runs as) with mode"
            f" {mode:04o}, which only root can do. Nothing was changed. Either run"
            " playbooks/storage.yml again with -e storage_become=true (-K if sudo asks for"
            f" a password; a sudo rule for {user}; AWX: EDMS Storage, 'Become root for the"
            f" host directory' true), or have root run: install -d -o {uid} -g {gid}"
            f" -m {mode:04o} {path} && chown {uid}:{gid} {path} && chmod {mode:04o} {path};"
            " then run playbooks/storage.yml again"
        )

    def make_host_dir(self, todo, uid, gid, mode):
        path = self.host_dir
        try:
            for what in todo:
                if what == "create":
                    os.makedirs(path, exist_ok=True)
                    os.chown(path, uid, gid)
                    os.chmod(path, mode)
                elif what == "chown":
                    os.chown(path, uid, gid)
                elif what == "chmod":
                    os.chmod(path, mode)
        except OSError as exc:
            raise self.error(f"cannot prepare host directory {path}: {exc}") from exc

    def drift(self, runs_as, container_id):
        """Why the running container does not show the mount and variables yet."""
        reasons = []
        target = posixpath.normpath(self.params["container_path"])
        mounted = [
            m
            for m in runs_as["mounts"] or []
            if posixpath.normpath(m.get("Destination") or "") == target
        ]
        if not mounted or os.path.realpath(mounted[0].get("Source") or "") != os.path.realpath(
            self.host_dir
        ):
            reasons.append(f"no bind mount of {self.host_dir} at {target}")
        for key, value in self.environment().items():
            answer = self.containers.exec(
                container_id, ["printenv", key], check=False, what=f"'printenv {key}'"
            )
            if answer.rc != 0 or answer.stdout.decode().rstrip("\n") != value:
                reasons.append(f"{key} is not {shown_value(key, value)}")
        return reasons

    def write(self, text):
        """Replace the compose file with text: checked by 'docker compose config'
        under its temporary name, the previous file copied first (backup)."""
        path = self.path
        st = os.stat(path)
        try:
            write_atomically(
                path,
                text,
                stat.S_IMODE(st.st_mode),
                owner=(st.st_uid, st.st_gid),
                suffix=".tmp",
                before_replace=self.check_and_keep,
            )
        except OSError as exc:
            raise self.error(f"cannot write compose file {path}: {exc}") from exc

    def check_and_keep(self, edited):
        """Fail unless the compose files pass 'docker compose config' with edited
        in place of this one; then copy the current file aside (backup)."""
        path = self.path
        files = list(self.files)
        files[self.file_index] = edited
        check = ComposeProject(
            project_dir=self.project_dir,
            files=files,
            runner=self.runner,
            commands=self.commands,
        )
        try:
            check.service_names()
        except ComposeError as exc:
            raise self.error(
                f"the edited {os.path.basename(path)} does not pass 'docker compose config',"
                f" so {path} is left as it was: {exc}"
            ) from exc
        if self.params.get("backup", True):
            backup = backup_name(path)
            shutil.copy2(path, backup)
            self.result["backup_file"] = backup

    def recreate_argv(self):
        return ["up", "-d", "--no-deps", "--wait", self.service]

    def recreate(self):
        try:
            self.compose._run(self.recreate_argv())
        except ComposeError as exc:
            kept = self.result.get("backup_file")
            note = f"; the previous file is kept at {kept}" if kept else ""
            raise self.error(
                f"recreating service '{self.service}' with the edited {self.path} failed:"
                f" {exc}{note}"
            ) from exc

    def probe_argv(self, name):
        path = posixpath.join(self.params["container_path"], name)
        return ["sh", "-c", PROBE_SCRIPT, "sh", name, path], path

    def prove(self, container_id, runs_as):
        """Show from inside the container that the mount and variables work."""
        target = posixpath.normpath(self.params["container_path"])
        proof = {"verified": False, "container_id": container_id, "service": self.service}
        proof["user"] = {k: runs_as[k] for k in ("user", "uid", "gid")}
        mounted = [
            m
            for m in runs_as["mounts"] or []
            if posixpath.normpath(m.get("Destination") or "") == target
        ]
        if not mounted:
            raise self.error(f"service '{self.service}' has no mount at {target} after recreation")
        mount = mounted[0]
        proof["mount"] = {
            "type": mount.get("Type"),
            "source": mount.get("Source"),
            "destination": mount.get("Destination"),
            "rw": mount.get("RW"),
        }
        if os.path.realpath(mount.get("Source") or "") != os.path.realpath(self.host_dir):
            raise self.error(
                f"service '{self.service}' mounts {mount.get('Source')} at {target},"
                f" not {self.host_dir}"
            )
        proof["environment"] = {}
        for key, value in self.environment().items():
            answer = self.containers.exec(
                container_id, ["printenv", key], check=False, what=f"'printenv {key}'"
            )
            seen = answer.stdout.decode("utf-8", "replace").rstrip("\n")
            if answer.rc != 0:
                raise self.error(f"{key} is not set in service '{self.service}'")
            if seen != value:
                raise self.error(
                    f"{key} is {shown_value(key, seen)!r} in service '{self.service}',"
                    f" not {shown_value(key, value)!r}"
                )
            proof["environment"][key] = shown_value(key, seen)
        name = f".edms-storage-probe-{uuid.uuid4().hex}"
        argv, inside = self.probe_argv(name)
        outside = os.path.join(self.host_dir, name)
        user = runs_as["user"] if runs_as["user"] != "root" else None
        try:
            try:
                self.containers.exec(
                    container_id,
                    argv,
                    user=user,
                    what=f"writing a probe file in {target} as {runs_as['user']}",
                )
            except ExecError as exc:
                raise self.error(
                    f"service '{self.service}' cannot write to {target} as user"
                    f" {runs_as['uid']}:{runs_as['gid']}: {exc}"
                ) from exc
            try:
                st = os.stat(outside)
                with open(outside, encoding="utf-8") as handle:
                    content = handle.read()
            except OSError as exc:
                raise self.error(
                    f"the probe file written in service '{self.service}' at {inside} is not in"
                    f" the host directory {self.host_dir}: {exc}"
                ) from exc
            if content != name:
                raise self.error(f"the probe file {outside} does not hold what was written")
            proof["probe"] = {
                "container_path": inside,
                "host_path": outside,
                "owner": st.st_uid,
                "group": st.st_gid,
                "expected_owner": runs_as["uid"],
            }
            if st.st_uid != runs_as["uid"]:
                raise self.error(
                    f"the probe file {outside} is owned by uid {st.st_uid}, not by uid"
                    f" {runs_as['uid']} that service '{self.service}' runs as"
                )
            self.containers.exec(
                container_id, ["rm", "-f", inside], user=user, what="removing the probe file"
            )
            proof["probe"]["removed"] = not os.path.lexists(outside)
            if not proof["probe"]["removed"]:
                raise self.error(f"the probe file {outside} is still there after its removal")
        finally:
            if os.path.lexists(outside):
                os.remove(outside)
        proof["verified"] = True
        return proof

    def run(self):
        self.locate()
        edited = self.edit()
        container_id = self.service_container()
        runs_as = self.user_of(container_id) if container_id else None
        uid, gid = self.wanted_owner(runs_as)
        mode = parse_mode(self.params.get("host_path_mode", "0775"))
        host_state, todo = self.host_dir_plan(uid, gid, mode)
        self.result["host_dir"] = host_state
        try:
            self.check_privilege(todo, uid, gid, mode)
        except StorageError as exc:
            if not self.check_mode:
                raise
            # Check mode shows the change all the same, and says it needs root.
            self.result.setdefault("warnings", []).append(str(exc))

        reasons = []
        if not edited.changed and container_id:
            reasons = self.drift(runs_as, container_id)
            if "create" in todo and not reasons:
                # A mount of a directory removed since: it must be made again.
                reasons.append(f"{self.host_dir} was missing")
        must_recreate = edited.changed or bool(reasons)
        recreate = must_recreate and self.params.get("recreate", True)
        if recreate:
            why = "; ".join(reasons) if reasons else f"{os.path.basename(self.path)} changed"
            self.result["actions"].append(f"service '{self.service}': recreate ({why})")
        self.result["changed"] = edited.changed or bool(todo) or recreate

        if self.check_mode:
            if edited.changed:
                files = list(self.files)
                files[self.file_index] = temporary_name(self.path, "XXXXXXXX", ".tmp")
                check = ComposeProject(project_dir=self.project_dir, files=files)
                self.plan(" ".join([*check.base_argv(), "config", "--services"]))
            if recreate:
                self.plan(" ".join([*self.compose.base_argv(), *self.recreate_argv()]))
            for key in self.environment():
                self.plan_exec(["printenv", key])
            name = ".edms-storage-probe-<random>"
            self.plan_exec(self.probe_argv(name)[0])
            self.plan_exec(["rm", "-f", self.probe_argv(name)[1]])
            self.result["proof"] = {"verified": False, "reason": "check mode: nothing was run"}
            return self.result

        self.make_host_dir(todo, uid, gid, mode)
        if edited.changed:
            self.write(edited.after)
        if recreate:
            self.recreate()
            container_id = self.service_container()
            if not container_id:
                raise self.error(f"service '{self.service}' is not running after recreation")
            runs_as = self.user_of(container_id)
        if must_recreate and not recreate:
            why = "; ".join(reasons) if reasons else "it was not recreated"
            self.result["proof"] = {
                "verified": False,
                "reason": f"recreate is false: service '{self.service}' still runs the old"
                f" configuration ({why})",
            }
        elif not container_id:
            self.result["proof"] = {
                "verified": False,
                "reason": f"service '{self.service}' is not running",
            }
        else:
            self.result["proof"] = self.prove(container_id, runs_as)
        return self.result


def compose_storage(params, runner=None, containers=None, check_mode=False, diff_mode=False):
    """Run the storage phase; returns the module's result or raises StorageError.

    diff_mode: include the compose file before and after (Ansible's --diff).
    """
    return ComposeStorage(params, runner, containers, check_mode, diff_mode).run()
