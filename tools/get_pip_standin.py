"""Offline stand-in for the get-pip.py bootstrap script that ansible-test downloads.

edms.backup: get-pip stand-in (tools/sanity.sh installs this file; do not edit the copy)

ansible-test creates every sanity-test virtual environment without pip, then runs
``~/.ansible/test/cache/get_pip_<pip version>.py`` inside it, for example::

    <venv>/bin/python get_pip_24_2.py --disable-pip-version-check pip==24.2 \
        --no-setuptools --no-wheel

When that file is missing, ansible-test downloads the real get-pip.py from a host
that this project's machines cannot reach. tools/sanity.sh copies this script to
that cache path instead. It does what get-pip.py does, using only the package index
that pip is already configured for:

1. bootstrap pip from the wheel bundled with the standard library (``ensurepip``);
2. run ``python -m pip install`` with the arguments it was given, so the pip version
   ansible-test asked for is installed from the configured index;
3. honour get-pip's own ``--no-setuptools`` and ``--no-wheel`` options, which pip
   itself does not understand.

Keep this file compatible with every Python version ansible-test may bootstrap
(3.8 and later): standard library only, no newer syntax.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

# get-pip.py options that are not pip options.
NO_SETUPTOOLS = "--no-setuptools"
NO_WHEEL = "--no-wheel"


def is_installed(name):
    """Return True if the distribution's top-level package is importable here."""
    importlib.invalidate_caches()  # pip may have just added or removed it
    return importlib.util.find_spec(name) is not None


def names_package(args, name):
    """Return True if one of the requirement arguments is for the package ``name``."""
    for arg in args:
        if arg.startswith("-"):
            continue
        head = arg.split(";")[0].strip().lower().replace("_", "-")
        for separator in ("[", "=", "<", ">", "!", "~", " "):
            head = head.split(separator)[0]
        if head == name:
            return True
    return False


def run(command, env):
    """Run a command, echoing it first, and return its exit status."""
    print("get-pip stand-in: " + " ".join(command), flush=True)
    return subprocess.call(command, env=env)


def main(argv):
    """Bootstrap pip, then install what get-pip.py would have installed."""
    no_setuptools = NO_SETUPTOOLS in argv
    no_wheel = NO_WHEEL in argv
    pip_args = [arg for arg in argv if arg not in (NO_SETUPTOOLS, NO_WHEEL)]

    # Like get-pip.py: setuptools and wheel come along unless they were declined.
    if not no_setuptools and not names_package(pip_args, "setuptools"):
        pip_args.append("setuptools")
    if not no_wheel and not names_package(pip_args, "wheel"):
        pip_args.append("wheel")

    had_setuptools = is_installed("setuptools")

    # The environment pip must run with: the caller's, untouched. ensurepip removes
    # every PIP_* variable and sets PIP_CONFIG_FILE=/dev/null in the environment of
    # the process it runs in; had that leaked into the install below, pip would
    # ignore /etc/pip.conf (index and CA bundle) and fail, e.g. with
    # CERTIFICATE_VERIFY_FAILED. Running ensurepip in a child process and passing
    # this copy explicitly keeps the two apart.
    env = dict(os.environ)

    # 1. pip (and, on Python < 3.12, setuptools) from the wheels bundled with Python.
    status = run([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], env)
    if status != 0:
        return status

    # 2. The requested packages (e.g. pip==24.2) from the configured index.
    status = run([sys.executable, "-m", "pip", "install", *pip_args], env)
    if status != 0:
        return status

    # 3. ensurepip on Python < 3.12 also installs setuptools; remove it again when
    #    it was declined, so the environment matches what get-pip.py would leave.
    if (
        no_setuptools
        and not had_setuptools
        and not names_package(pip_args, "setuptools")
        and is_installed("setuptools")
    ):
        status = run(
            [
                sys.executable,
                "-m",
                "pip",
                "uninstall",
                "--yes",
                "--disable-pip-version-check",
                "setuptools",
            ],
            env,
        )

    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
