#!/usr/bin/env bash
# Builds the local stand-in for the base image AWX users pull for the
# execution environment (execution-environment.yml names
# quay.io/fedora/python-311:latest; no image registry is reachable here).
# It gives ansible-builder's stages what that image gives them: Python 3.11 at
# /usr/bin/python3 with pip (and ensurepip), dnf at /usr/bin/dnf, and the
# site's CA certificates so that pip reaches the package index over HTTPS
# (ee-base/Dockerfile says how). It holds nothing of the collection.
#
# It starts from the demo stack's Debian bookworm base (demo/images/base/build.sh,
# a debootstrap, built here if missing) and adds a few Debian packages. The
# build is cached: run again unchanged, it keeps the image as it is.
# Usage: tools/ee-base.sh [IMAGE_TAG]   (default edms-ee-base:bookworm-1)
set -euo pipefail
cd "$(dirname "$0")/.."

tag=${1:-edms-ee-base:bookworm-1}
# The demo's base (tools/reference-stack.bash names the same tag).
debian_base=edms-demo/base:bookworm-1

docker info >/dev/null 2>&1 || {
  echo "ee-base: the Docker engine does not answer (demo/bin/stack up starts one)" >&2
  exit 1
}
if ! docker image inspect "$debian_base" >/dev/null 2>&1; then
  demo/images/base/build.sh "$debian_base"
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp tools/ee-base/Dockerfile "$context/"
mkdir "$context/ca"
# The CA certificates this machine trusts beyond Debian's own bundle.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$context/ca/"
fi

before=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
out=$(DOCKER_BUILDKIT=0 docker build --build-arg "BASE_IMAGE=$debian_base" -t "$tag" "$context" 2>&1) || {
  printf '%s\n' "$out" >&2
  echo "ee-base: the build of $tag failed" >&2
  exit 1
}
after=$(docker image inspect -f '{{.Id}}' "$tag")
if [ "$before" = "$after" ]; then
  echo "ee-base: $tag up to date" >&2
else
  echo "ee-base: $tag built" >&2
fi
