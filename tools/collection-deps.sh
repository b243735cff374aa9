#!/usr/bin/env bash
# Collections the repository's own tooling needs beside edms.backup, put into
# build/collections (ansible.cfg's collections_path):
#   awx.awx  the modules awx/configure.yml applies the job templates with.
# Ansible Galaxy is not reachable from these machines; the `ansible` package
# on PyPI bundles awx.awx, so the collection is taken from one pinned release
# of it (checked by sha256). The collection itself has no dependency: this is
# for configuring AWX, linting and syntax-checking awx/configure.yml.
set -euo pipefail
cd "$(dirname "$0")/.."

ANSIBLE_RELEASE=12.3.0
WHEEL=ansible-${ANSIBLE_RELEASE}-py3-none-any.whl
WHEEL_SHA256=cd156f82fa87f7a899212b0efa9f7ca3a24d609212de9f78428a572eb01e5414
AWX_VERSION=24.6.1  # awx.awx in that release; awx/requirements.yml pins the same
DEST=build/collections/ansible_collections/awx/awx
PYTHON=${PYTHON:-.venv/bin/python}

if [ -f "$DEST/MANIFEST.json" ] &&
  "$PYTHON" -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["collection_info"]["version"] != sys.argv[2])' \
    "$DEST/MANIFEST.json" "$AWX_VERSION"; then
  exit 0
fi

mkdir -p build/wheels
if [ ! -f "build/wheels/$WHEEL" ]; then
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps \
    "ansible==$ANSIBLE_RELEASE" -d build/wheels
fi
echo "$WHEEL_SHA256  build/wheels/$WHEEL" | sha256sum -c --quiet

rm -rf "$DEST"
"$PYTHON" - "build/wheels/$WHEEL" build/collections "$AWX_VERSION" <<'EOF'
import json
import sys
import zipfile

wheel, target, version = sys.argv[1:]
prefix = "ansible_collections/awx/awx/"
with zipfile.ZipFile(wheel) as archive:
    members = [name for name in archive.namelist() if name.startswith(prefix)]
    if not members:
        sys.exit(f"{wheel} holds no {prefix}")
    archive.extractall(target, members)
    found = json.loads(archive.read(prefix + "MANIFEST.json"))["collection_info"]["version"]
if found != version:
    sys.exit(f"{wheel} holds awx.awx {found}, not {version}")
print(f"awx.awx {found} from {wheel.rsplit('/', 1)[-1]}")
EOF
