"""The lock's action plugin: what it reads of the connection."""

from ansible_collections.edms.backup.plugins.action.lock import kept_by


class Connection:
    """What kept_by reads of a connection plugin: its transport and options."""

    def __init__(self, transport, **options):
        self.transport = transport
        self.options = options

    def get_option(self, name):
        if name not in self.options:
            raise KeyError(name)
        return self.options[name]


def test_ssh_with_controlpersist_is_kept():
    connection = Connection(
        "ssh",
        ssh_args="-C -o ControlMaster=auto -o ControlPersist=60s",
        ssh_common_args="",
        ssh_extra_args=None,
    )
    assert kept_by(connection) is True


def test_ssh_without_controlpersist_is_not_kept():
    connection = Connection("ssh", ssh_args="", ssh_common_args="", ssh_extra_args="")
    assert kept_by(connection) is False


def test_the_extra_arguments_count_after_ssh_args():
    connection = Connection(
        "ssh", ssh_args="-o ControlMaster=no", ssh_extra_args="-o ControlMaster=auto"
    )
    assert kept_by(connection) is False


def test_other_connections_are_not_kept():
    local = Connection("local", ssh_args="-o ControlMaster=auto -o ControlPersist=60s")
    assert kept_by(local) is False
    assert kept_by(Connection("paramiko")) is False
