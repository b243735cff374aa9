#!/usr/bin/env bash
# Builds the execution environment of execution-environment.yml on this
# machine, where no image registry is reachable and HTTPS from inside a build
# does not trust the package index's certificate (../TESTBED facts):
#   - the base image is the demo's Debian bookworm base (demo/bin/stack builds
#     it), not the registry image the definition names;
#   - every Python package comes from a wheelhouse downloaded on the host
#     (pip download), installed with PIP_NO_INDEX, as air-gapped sites do;
#   - apt-get is the package manager (ansible-builder assumes dnf); it adds
#     pip itself (Debian's python3-pip: Debian disables ensurepip for the
#     system Python, which ansible-builder's pip step uses), nothing else,
#     since the collection needs no system package.
# Everything else (stages, introspection of the collection's
# meta/execution-environment.yml, the install of the collection) is
# ansible-builder's own. Output: image edms-backup-ee:<version>.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
BASE_IMAGE=${EE_BASE_IMAGE:-edms-demo/base:bookworm-1}
VERSION=$("$BIN/python" -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
TAG=${EE_TAG:-edms-backup-ee:$VERSION}
WORK=build/ee

docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || {
  echo "build-ee: base image $BASE_IMAGE is missing; run demo/bin/stack up first" >&2
  exit 1
}

rm -rf "$WORK"
mkdir -p "$WORK/wheels"
"$BIN/ansible-galaxy" collection build --force --output-path "$WORK" . >/dev/null
# The definition names the tarball without its version (galaxy.yml has it).
mv "$WORK/edms-backup-$VERSION.tar.gz" "$WORK/edms-backup.tar.gz"
# What the stages install with pip: ansible-core and ansible-runner (as in
# the definition), the collection's requirements.txt, and what
# ansible-builder's own scripts install (bindep, pyyaml, packaging, dumb-init).
"$BIN/python" -m pip download -q --disable-pip-version-check --only-binary=:all: \
  --python-version 3.11 --platform manylinux2014_x86_64 --platform manylinux_2_34_x86_64 \
  --platform any -d "$WORK/wheels" \
  ansible-core==2.19.14 ansible-runner==2.4.3 -r requirements.txt \
  bindep pyyaml packaging dumb-init==1.2.5 2>&1 | grep -v "^WARNING: Location" || true

"$BIN/python" - "$WORK" "$BASE_IMAGE" <<'EOF'
import sys

import yaml

work, base = sys.argv[1:]
with open("execution-environment.yml") as handle:
    definition = yaml.safe_load(handle)
definition["images"]["base_image"]["name"] = base
options = definition.setdefault("options", {})
options["package_manager_path"] = "/usr/bin/apt-get"
options["skip_pip_install"] = True
definition.setdefault("build_arg_defaults", {})["PKGMGR_PRESERVE_CACHE"] = "always"
definition["additional_build_files"] = [
    {"src": entry["src"].replace("build/ee/", ""), "dest": entry["dest"]}
    for entry in definition["additional_build_files"]
] + [{"src": "wheels", "dest": "wheels"}]
definition.setdefault("additional_build_steps", {})["prepend_base"] = [
    "RUN apt-get update -q && apt-get install -y -q --no-install-recommends python3-pip"
    " && rm -rf /var/lib/apt/lists/*",
    "COPY _build/wheels /wheels",
    "ENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels",
]
with open(f"{work}/execution-environment.yml", "w") as handle:
    yaml.safe_dump(definition, handle, sort_keys=False)
EOF

"$BIN/ansible-builder" build --container-runtime docker -f "$WORK/execution-environment.yml" \
  -c "$WORK/context" -t "$TAG" -v 2
echo "build-ee: $TAG"
