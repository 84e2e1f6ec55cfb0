"""Nothing from stack.yaml, a block or the command line reaches a shell unquoted: create host runs as root there."""

import shlex
from pathlib import Path

import pytest
from pydantic import ValidationError

from incarnate.config import HostSettings, NfsShare, SmbShare, parse_stack_config
from incarnate.errors import ConfigError
from incarnate.host import LocalShell
from incarnate.hostprep import ensure_directories, ensure_dns_names, mount_nfs, reach_smb, update_file

MARKER = "/tmp/incarnate-pwned"
PAYLOADS = [
    f";touch {MARKER};#",
    f" && touch {MARKER}",
    f"|touch {MARKER}",
    f"$(touch {MARKER})",
    f"`touch {MARKER}`",
    f"\ntouch {MARKER}",
    f" >{MARKER}",
    f"&touch {MARKER}&",
]
BASE = "stack: a\nproduct: demo\nrelease: 1.0.0\n"


def host_yaml(field: str, payload: str) -> str:
    """stack.yaml whose host setting `field` carries the payload (JSON strings are valid YAML)."""
    import json

    values = {
        "directories": {"directories": [f"/srv/a{payload}"]},
        "dns_names": {"dns_names": [f"a.example.test{payload}"]},
        "nfs.source": {"backup_share": {"kind": "nfs", "source": f"nas:/export{payload}", "mount": "/mnt/b"}},
        "nfs.source.server": {"backup_share": {"kind": "nfs", "source": f"nas{payload}:/export", "mount": "/mnt/b"}},
        "nfs.mount": {"backup_share": {"kind": "nfs", "source": "nas:/export", "mount": f"/mnt/b{payload}"}},
        "smb.server": {"backup_share": {"kind": "smb", "server": f"nas{payload}", "share": "b"}},
        "smb.share": {"backup_share": {"kind": "smb", "server": "nas", "share": f"b{payload}"}},
    }[field]
    return BASE + "host: " + json.dumps(values) + "\n"


FIELDS = ["directories", "dns_names", "nfs.source", "nfs.source.server", "nfs.mount", "smb.server", "smb.share"]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("field", FIELDS)
def test_every_host_setting_with_shell_metacharacters_is_refused_naming_the_field(field, payload):
    with pytest.raises(ConfigError, match=r"stack\.yaml: field 'host\."):
        parse_stack_config(host_yaml(field, payload), "stack.yaml")


class RecordingShell:
    """A root shell that records each command instead of running it (create host's mount and package steps
    must not change this machine); `as_root` wraps as sudo would for a non-root login."""

    name, user = "ssh://deploy@vm:22", "deploy"

    def __init__(self) -> None:
        self.commands: list[str] = []

    def is_root(self) -> bool:
        return False

    def as_root(self, command: str) -> str:
        from incarnate.ssh import as_root

        return as_root(command, False)

    def execute(
        self, command: str, *, what: str, stdin: bytes | None = None, check: bool = True, timeout: float = 600
    ) -> str:
        self.commands.append(command)
        return "/usr/sbin/mount.nfs\n" if command.startswith("command -v") else ""


def runs_marker(command: str) -> bool:
    """Whether the shell would run `touch MARKER` (or write MARKER): the payload escaped its quoting."""
    tokens = list(shlex.shlex(command, posix=True, punctuation_chars=True))
    nested = [token for token in tokens if " " in token and token != command]
    return any(
        tokens[i : i + 2] == ["touch", MARKER] or tokens[i : i + 2] == [">", MARKER] for i in range(len(tokens))
    ) or any(
        runs_marker(inner)
        for inner in nested
        if inner.startswith(
            ("sh -c", "mkdir", "for ", "[ ", "cp ", "umask", "mountpoint", "install", "timeout", "cat", "mv")
        )
    )


@pytest.mark.parametrize("payload", PAYLOADS)
def test_host_preparation_quotes_every_value_even_past_validation(payload):
    """Defence in depth: values that somehow passed the schema still reach the shell as single words."""
    shell = RecordingShell()
    nfs = NfsShare.model_construct(kind="nfs", source=f"nas:/export{payload}", mount=f"/mnt/b{payload}")
    smb = SmbShare.model_construct(kind="smb", server=f"nas{payload}", port=445, share="b")
    ensure_directories(shell, [f"/srv/a{payload}"])
    mount_nfs(shell, "a", nfs)
    try:
        reach_smb(shell, smb)
    except Exception:  # noqa: BLE001 - only what was sent to the shell matters here
        pass
    ensure_dns_names(shell, "a", [f"a.example.test{payload}"])
    assert shell.commands, "nothing was sent"
    escaped = [command for command in shell.commands if runs_marker(command)]
    assert escaped == [], f"unquoted: {escaped[0]!r}"


def test_directories_with_metacharacters_run_for_real_make_no_marker(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / f"d;touch {marker};#"
    ensure_directories(LocalShell(), [str(folder)])
    assert folder.is_dir() and not marker.exists()


def test_system_files_are_replaced_whole_and_the_first_backup_is_kept(tmp_path):
    """/etc/hosts and /etc/fstab: a temp file renamed into place; the pristine copy survives a second edit."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    shell = LocalShell()
    assert update_file(shell, str(hosts), "# incarnate:a", "127.0.0.1 a.example.test")
    inode_after_first = hosts.stat().st_ino
    assert update_file(shell, str(hosts), "# incarnate:a", "127.0.0.1 b.example.test")
    assert hosts.read_text() == "127.0.0.1 localhost\n127.0.0.1 b.example.test # incarnate:a\n"
    assert Path(f"{hosts}.incarnate-backup").read_text() == "127.0.0.1 localhost\n"
    assert hosts.stat().st_ino != inode_after_first  # renamed into place, not rewritten under a reader
    assert not list(tmp_path.glob(".hosts*")) and not list(tmp_path.glob("*.tmp*"))


@pytest.mark.parametrize("value", ["root;id", "a b", "-oProxyCommand=x", "$(id)", "vm`id`", "vm\nid"])
@pytest.mark.parametrize("field", ["user", "address"])
def test_ssh_host_block_user_and_address_are_validated(field, value):
    from blocks.hosts import SshHost

    fields = {"address": "vm.example.test", "user": "root", field: value}
    with pytest.raises(ValidationError, match=field):
        SshHost(**fields, private_key="k", host_key="ssh-ed25519 AAAA")


def test_host_settings_model_refuses_metacharacters_directly():
    with pytest.raises(ValidationError):
        HostSettings(directories=["/srv/a;id"])
