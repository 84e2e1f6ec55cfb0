"""Pure logic of SSH hosts and host preparation: addresses, pinned keys, managed lines, settings."""

import subprocess

import pytest

from incarnate.config import parse_stack_config
from incarnate.errors import ConfigError
from incarnate.host import resolve_host
from incarnate.hostprep import parse_os_release, with_managed_line
from incarnate.ssh import SshAddress, as_root, fingerprint, pinned_keys


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ssh://root@10.0.0.5", SshAddress("10.0.0.5", "root", 22)),
        ("ssh://deploy@host.example.com:2222", SshAddress("host.example.com", "deploy", 2222)),
        ("ssh://vm7", SshAddress("vm7", "root", 22)),
        ("ssh://admin@[fd00::5]:22", SshAddress("fd00::5", "admin", 22)),
    ],
)
def test_ssh_address_is_parsed(url, expected):
    assert SshAddress.parse(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "ssh://",
        "ssh://root@",
        "ssh://root@host:0",
        "ssh://root@host:70000",
        "ssh://ro ot@host",
        "ssh://root@host;rm -rf /",
    ],
)
def test_bad_ssh_address_is_refused_naming_it(url):
    with pytest.raises(ConfigError, match="expected ssh://USER@HOST"):
        SshAddress.parse(url)


def test_known_hosts_name_brackets_a_port_other_than_22():
    assert SshAddress("h", "root", 22).known_hosts_name == "h"
    assert SshAddress("h", "root", 2222).known_hosts_name == "[h]:2222"


def test_unknown_host_address_form_is_refused():
    with pytest.raises(ConfigError, match="expected nothing .this machine., ssh://USER@HOST"):
        resolve_host("http://host:2375")
    assert resolve_host("").name == "local"
    assert resolve_host("unix:///run/other.sock").name == "unix:///run/other.sock"


@pytest.fixture(scope="module")
def host_key(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("keys") / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def test_pins_come_from_known_hosts_lines_or_a_bare_key(host_key):
    address = SshAddress("10.0.0.5", "root", 2222)
    for text in (f"[10.0.0.5]:2222 {host_key}\n", f"# comment\n{host_key}\n"):
        keys = pinned_keys(address, text)
        assert list(keys.lookup("[10.0.0.5]:2222").values())[0].get_base64() == host_key.split()[1]
    assert pinned_keys(address, f"otherhost {host_key}\n").lookup("[10.0.0.5]:2222") is None
    assert pinned_keys(address, "garbage line\n").lookup("[10.0.0.5]:2222") is None


def test_fingerprint_matches_ssh_keygen(host_key, tmp_path):
    (tmp_path / "k.pub").write_text(host_key + "\n")
    expected = subprocess.run(
        ["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True
    ).stdout.split()[1]
    key = list(pinned_keys(SshAddress("h"), host_key).lookup("h").values())[0]
    assert fingerprint(key) == expected


def test_root_commands_use_passwordless_sudo_only_when_not_root():
    assert as_root("apt-get install -y x", root=True) == "apt-get install -y x"
    assert as_root("echo 'a b'", root=False) == "sudo -n -- sh -c 'echo '\"'\"'a b'\"'\"''"


def test_managed_line_is_added_replaced_and_removed_leaving_other_lines():
    original = "127.0.0.1 localhost\n::1 localhost\n"
    added = with_managed_line(original, "# incarnate:a", "127.0.0.1 a.example.test")
    assert added == original + "127.0.0.1 a.example.test # incarnate:a\n"
    assert with_managed_line(added, "# incarnate:a", "127.0.0.1 a.example.test") == added  # idempotent
    changed = with_managed_line(added, "# incarnate:a", "127.0.0.1 b.example.test")
    assert changed.count("# incarnate:a") == 1 and "b.example.test" in changed
    assert with_managed_line(changed, "# incarnate:a", None) == original
    other = with_managed_line(added, "# incarnate:ab", "127.0.0.1 c.test")
    assert "a.example.test # incarnate:a\n" in other  # a stack's marker never matches another's


def test_os_release_is_parsed():
    text = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n# comment\n'
    assert parse_os_release(text) == {
        "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)",
        "ID": "debian",
        "VERSION_ID": "12",
    }


BASE = "stack: a\nproduct: demo\nrelease: 1.0.0\n"


def test_host_settings_are_validated():
    config = parse_stack_config(
        BASE + "host:\n  dns_names: [a.example.test]\n  directories: [/srv/a/]\n"
        "  backup_share: {kind: nfs, source: 'nas:/export/b', mount: /mnt/b}\n",
        "stack.yaml",
    )
    assert config.host.directories == ["/srv/a"] and config.host.backup_share.mount == "/mnt/b"


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("{directories: [srv]}", "field 'host.directories.0': expected an absolute path"),
        ("{directories: ['/srv/../etc']}", "field 'host.directories.0': expected an absolute path without '..'"),
        ("{dns_names: ['a b']}", "field 'host.dns_names.0': expected a DNS name"),
        (
            "{backup_share: {kind: nfs, source: nas, mount: /m}}",
            "field 'host.backup_share.nfs.source': expected an NFS export",
        ),
        ("{backup_share: {kind: smb, server: nas, share: 'a b'}}", "field 'host.backup_share.smb.share'"),
        ("{backup_share: {kind: ftp}}", "field 'host.backup_share'"),
        ("{adress: x}", "field 'host.adress' is not a known setting"),
    ],
)
def test_bad_host_settings_are_named(host, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_stack_config(BASE + f"host: {host}\n", "stack.yaml")


class ScriptedShell:
    """A host shell whose answers are scripted, to check the decisions of create host (not the commands' effects)."""

    name, user = "ssh://root@vm:22", "root"

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers, self.commands = answers, []

    def is_root(self) -> bool:
        return True

    def as_root(self, command: str) -> str:
        return command

    def execute(
        self, command: str, *, what: str, stdin: bytes | None = None, check: bool = True, timeout: float = 600
    ) -> str:
        self.commands.append(command)
        return next((answer for prefix, answer in self.answers.items() if command.startswith(prefix)), "")


def test_docker_is_installed_from_debian_packages_only_when_missing():
    from incarnate.hostprep import ensure_docker

    debian = {"ID": "debian", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}
    present = ScriptedShell({"command -v docker": "/usr/bin/docker\n", "docker version": "24.0.7\n"})
    assert ensure_docker(present, debian) == "Docker Engine 24.0.7 present"
    assert not any("apt-get" in command for command in present.commands)
    missing = ScriptedShell({"docker version": "20.10.24\n"})
    assert ensure_docker(missing, debian) == "Docker Engine 20.10.24 installed"
    assert any("apt-get install" in command and "docker.io" in command for command in missing.commands)


def test_an_engine_that_does_not_answer_is_started_the_hosts_way_or_the_error_names_its_log():
    from incarnate.errors import HostError
    from incarnate.hostprep import ensure_docker

    debian = {"ID": "debian", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}
    answers = {"command -v docker": "/usr/bin/docker\n", "for i in": "20.10.24\n"}  # answers once started
    with_systemd = ScriptedShell({**answers, "[ -d /run/systemd/system ]": "systemd\n"})
    assert ensure_docker(with_systemd, debian) == "Docker Engine 20.10.24 present, started by systemd (enabled)"
    assert "systemctl enable --now docker" in with_systemd.commands
    bare = ScriptedShell(answers)  # a container or chroot: no init system
    assert ensure_docker(bare, debian).startswith("Docker Engine 20.10.24 present, started without an init system")
    assert any(command.startswith("setsid dockerd >>/var/log/dockerd.log") for command in bare.commands)
    silent = ScriptedShell({"command -v docker": "/usr/bin/docker\n"})
    with pytest.raises(
        HostError, match=r"does not answer, though it was started without an init system .* see its log there"
    ):
        ensure_docker(silent, debian)


def test_docker_missing_on_another_os_is_refused_before_any_change():
    from incarnate.errors import HostError
    from incarnate.hostprep import ensure_docker

    shell = ScriptedShell({})
    with pytest.raises(
        HostError, match="runs Fedora Linux 40 and lacks Docker Engine; incarnate installs it only on Debian"
    ):
        ensure_docker(shell, {"ID": "fedora", "PRETTY_NAME": "Fedora Linux 40"})
    assert shell.commands == ["command -v docker || true"]


def tunnel_for(tmp_path, known_hosts: str):
    from incarnate.ssh import OpenSshTunnel, SshCredentials

    key = tmp_path / "key"
    subprocess.run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    folder = tmp_path / "tunnel"
    folder.mkdir(mode=0o700)
    credentials = SshCredentials(key.read_text(), known_hosts, "test")
    return OpenSshTunnel(SshAddress("10.0.0.5", "root", 2222), credentials, "docker system dial-stdio", folder)


def test_openssh_tunnel_pins_only_this_host_and_writes_no_key(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    mine, other = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvsBiZvcBHTpJsXOEn8cbPJSdR0sFnqmSDm9EHe6cUE",
    )
    tunnel = tunnel_for(tmp_path, f"[10.0.0.5]:2222 {mine}\n10.0.0.6 {other}\n")
    try:
        files = {path.name: path for path in (tmp_path / "tunnel").iterdir()}
        assert sorted(files) == ["known_hosts", "ssh_config"]
        assert all(path.stat().st_mode & 0o777 == 0o600 for path in files.values())
        assert files["known_hosts"].read_text() == f"[10.0.0.5]:2222 {mine}\n"
        config = files["ssh_config"].read_text()
        assert "StrictHostKeyChecking yes" in config and "IdentitiesOnly yes" in config
        assert "PRIVATE KEY" not in config + files["known_hosts"].read_text()
        assert tunnel.command == "docker system dial-stdio"
    finally:
        tunnel.close()


def test_openssh_tunnel_without_an_ssh_client_says_which_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `ssh` anywhere on it
    from incarnate.errors import HostError

    with pytest.raises(HostError, match=r"the OpenSSH client \(`ssh`\) is missing on this machine.*openssh-client"):
        tunnel_for(tmp_path, "")
