"""tools/build-ee.sh builds execution-environment.yml as shipped, with only the base image swapped.

No registry is reachable here, so the base image the definition names is
replaced by a local stand-in (tools/ee-base.sh), and by nothing else: the
script hands ansible-builder the shipped file itself and one build argument,
EE_BASE_IMAGE (ansible-builder's own switch for the base image). The
Containerfile ansible-builder makes of the definition uses that argument in
the base stage's FROM only, so the argument changes the base image and
nothing more. No Docker: the script's --dry-run prints the command, and
`ansible-builder create` only writes the build context.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
SCRIPT = os.path.join(ROOT, "tools", "build-ee.sh")
with open(os.path.join(ROOT, "galaxy.yml")) as _handle:
    VERSION = yaml.safe_load(_handle)["version"]
with open(os.path.join(ROOT, "execution-environment.yml")) as _handle:
    SHIPPED_BASE = yaml.safe_load(_handle)["images"]["base_image"]["name"]


def dry_run(**env):
    """The ansible-builder command the script would run (with env set, EE_* unset otherwise)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("EE_BASE_IMAGE", "EE_TAG")}
    proc = subprocess.run(
        [SCRIPT, "--dry-run"],
        capture_output=True,
        text=True,
        env={**clean, "BIN": BIN, **env},
        check=True,
        timeout=60,
    )
    return shlex.split(proc.stdout)


def expected(base):
    return [
        os.path.join(BIN, "ansible-builder"), "build", "--container-runtime", "docker",
        "-f", "execution-environment.yml", "-c", "build/ee/context",
        "-t", f"edms-backup-ee:{VERSION}", "--build-arg", f"EE_BASE_IMAGE={base}", "-v", "2",
    ]  # fmt: skip


def test_the_script_builds_the_shipped_definition_with_the_stand_in_base_and_nothing_else():
    assert dry_run() == expected("edms-ee-base:bookworm-1")


def test_a_base_image_of_ones_own_is_the_one_thing_that_changes():
    assert dry_run(EE_BASE_IMAGE="registry.example/site/python-311:1") == expected(
        "registry.example/site/python-311:1"
    )


def test_the_build_argument_swaps_the_base_image_and_only_it(tmp_path):
    # The shipped definition, byte for byte, beside a stand-in for the
    # collection tarball it names (ansible-builder create copies it).
    shutil.copy(os.path.join(ROOT, "execution-environment.yml"), tmp_path)
    (tmp_path / "build" / "ee").mkdir(parents=True)
    (tmp_path / "build" / "ee" / "edms-backup.tar.gz").write_bytes(b"")
    subprocess.run(
        [os.path.join(BIN, "ansible-builder"), "create", "-f", "execution-environment.yml",
         "-c", "context", "--output-filename", "Dockerfile", "-v", "0"],
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    dockerfile = (tmp_path / "context" / "Dockerfile").read_text()
    # The argument's default is the image the definition names...
    assert f'ARG EE_BASE_IMAGE="{SHIPPED_BASE}"' in dockerfile.splitlines()
    # ...and the argument is used once: the base stage's FROM. Every other
    # stage starts from a stage of this build, not from an image.
    uses = [line for line in dockerfile.splitlines() if "$EE_BASE_IMAGE" in line]
    assert uses == ["FROM $EE_BASE_IMAGE AS base"]
    stages = re.findall(r"^FROM (\S+) AS (\S+)$", dockerfile, re.MULTILINE)
    assert stages[0] == ("$EE_BASE_IMAGE", "base")
    named = {name for _image, name in stages}
    assert all(image in named for image, _name in stages[1:]), stages
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) == len(stages)
