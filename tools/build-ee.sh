#!/usr/bin/env bash
# Builds the execution environment of execution-environment.yml with
# ansible-builder, as its header says, changing nothing but the base image:
#   - the collection tarball at build/ee/edms-backup.tar.gz (the name the
#     definition gives it);
#   - `ansible-builder build -f execution-environment.yml` on the shipped
#     definition itself, with `--build-arg EE_BASE_IMAGE=...` (ansible-builder's
#     own switch for the base image) naming a local stand-in for the image the
#     definition names, since no image registry is reachable here:
#     tools/ee-base.sh builds it (Debian bookworm with Python 3.11, pip and
#     dnf, and the site's CA certificates).
# Everything else (the stages, dnf as the package manager, pip installing
# ansible-core, ansible-runner, the collection's requirements and dumb-init
# from the package index, the introspection of the collection's
# meta/execution-environment.yml) is the definition's and ansible-builder's.
# Output: image edms-backup-ee:<version> (galaxy.yml's version).
#
# EE_BASE_IMAGE=IMAGE uses an image of your own instead of the stand-in;
# --dry-run prints the ansible-builder command and does nothing else
# (tests/unit/test_build_ee.py checks it).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
STAND_IN=edms-ee-base:bookworm-1
BASE_IMAGE=${EE_BASE_IMAGE:-$STAND_IN}
VERSION=$("$BIN/python" -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
TAG=${EE_TAG:-edms-backup-ee:$VERSION}
WORK=build/ee

builder=(
  "$BIN/ansible-builder" build --container-runtime docker
  -f execution-environment.yml -c "$WORK/context" -t "$TAG"
  --build-arg "EE_BASE_IMAGE=$BASE_IMAGE" -v 2
)
if [ "${1:-}" = --dry-run ]; then
  printf '%q ' "${builder[@]}"
  echo
  exit 0
fi

if [ "$BASE_IMAGE" = "$STAND_IN" ]; then
  tools/ee-base.sh "$STAND_IN"
elif ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "build-ee: base image $BASE_IMAGE is missing" >&2
  exit 1
fi

rm -rf "$WORK"
mkdir -p "$WORK"
"$BIN/ansible-galaxy" collection build --force --output-path "$WORK" . >/dev/null
# The definition names the tarball without its version (galaxy.yml has it).
mv "$WORK/edms-backup-$VERSION.tar.gz" "$WORK/edms-backup.tar.gz"

"${builder[@]}"
echo "build-ee: $TAG"
