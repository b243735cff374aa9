# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Faults the tests inject, to prove that what follows a failure holds.

A test names the step to fail at in the environment of the module's process,
never in a module option or a role input: EDMS_BACKUP_TEST_FAULT=<stage>,
honoured only together with EDMS_BACKUP_TEST_MODE=1, so that a variable left
in a user's environment changes nothing. docs/testing.md describes it.
"""

from __future__ import annotations

import os

FAULT_VARIABLE = "EDMS_BACKUP_TEST_FAULT"
TEST_MODE_VARIABLE = "EDMS_BACKUP_TEST_MODE"


class FaultError(ValueError):
    """The fault asked for is not one this step can inject."""


def injected_fault(choices):
    """The stage of ``choices`` the test asks to fail at, or None.

    None unless EDMS_BACKUP_TEST_MODE is ``1``; an empty or unset
    EDMS_BACKUP_TEST_FAULT is None too. A stage not in ``choices`` raises
    FaultError naming the variable, its value and the stages there are.
    """
    if os.environ.get(TEST_MODE_VARIABLE) != "1":
        return None
    stage = os.environ.get(FAULT_VARIABLE, "")
    if not stage:
        return None
    if stage not in choices:
        raise FaultError(
            f"{FAULT_VARIABLE}={stage!r} is not a stage where a fault can be injected"
            f" (one of {', '.join(choices)})"
        )
    return stage
