"""The maintenance container keeps the stopped backend's confinement."""

import pytest
from ansible_collections.edms.backup.plugins.module_utils._platform.maintenance import (
    MaintenanceError,
    confinement,
)

HARDENED = {
    "CapDrop": ["ALL"],
    "CapAdd": ["CHOWN"],
    "SecurityOpt": ["no-new-privileges:true", "seccomp=/etc/edms/seccomp.json"],
    "ReadonlyRootfs": True,
    "Runtime": "runsc",
    "UsernsMode": "host",
    "GroupAdd": ["1500"],
    "Devices": [
        {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rw"}
    ],
    "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
    "PidsLimit": 200,
    "Memory": 536870912,
    "ShmSize": 67108864,
    "Tmpfs": {"/tmp": "rw,noexec"},
    "ExtraHosts": ["ldap.lab:10.0.0.5"],
    "Dns": ["10.0.0.2"],
    "Init": True,
    "Privileged": False,
}


def test_f8_the_maintenance_container_keeps_the_backends_confinement():
    kwargs = confinement(HARDENED)
    assert kwargs["cap_drop"] == ["ALL"]
    assert kwargs["cap_add"] == ["CHOWN"]
    assert kwargs["security_opt"] == HARDENED["SecurityOpt"]
    assert kwargs["read_only"] is True
    assert kwargs["runtime"] == "runsc"
    assert kwargs["userns_mode"] == "host"
    assert kwargs["group_add"] == ["1500"]
    assert kwargs["devices"] == ["/dev/fuse:/dev/fuse:rw"]
    assert [(u["Name"], u["Soft"], u["Hard"]) for u in kwargs["ulimits"]] == [
        ("nofile", 1024, 2048)
    ]
    assert kwargs["pids_limit"] == 200
    assert kwargs["mem_limit"] == 536870912
    assert kwargs["shm_size"] == 67108864
    assert kwargs["tmpfs"] == {"/tmp": "rw,noexec"}
    assert kwargs["extra_hosts"] == ["ldap.lab:10.0.0.5"]
    assert kwargs["dns"] == ["10.0.0.2"]
    assert kwargs["init"] is True


def test_f8_an_unconfined_backend_gives_no_options_and_unset_limits_stay_unset():
    assert confinement({"Memory": 0, "PidsLimit": -1, "ShmSize": None, "CapAdd": None}) == {}


def test_f8_a_privileged_backend_is_refused():
    with pytest.raises(MaintenanceError, match="privileged"):
        confinement({"Privileged": True})
