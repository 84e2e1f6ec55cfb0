"""SSH container hosts: key login against a pinned host key, remote commands, and the host's
Docker engine reached through SSH channels (its socket is never published on the network).

The engine is reached the way `docker -H ssh://` does it, but from inside this process:
a private Unix socket on this machine, each connection to it an SSH channel running
`docker system dial-stdio` on the host. So the docker CLI, Compose and docker-py work
unchanged with DOCKER_HOST pointing at that socket, and dumps and archives stream through
(nothing is staged on this machine).
"""

import atexit
import base64
import binascii
import hashlib
import io
import logging
import os
import re
import select
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import paramiko
from fabric import Config, Connection

from incarnate.errors import ConfigError, HostError, tail
from incarnate.private import write_private

# paramiko's transport thread logs a traceback for failures (no banner, reset) that the HostError raised here
# already states in one sentence; an operator's terminal gets the sentence only.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)

CONNECT_TIMEOUT = 10
BLOCK = 1 << 16
KEY_TYPE_PREFIXES = ("ssh-", "ecdsa-", "sk-")  # a line starting like this is a bare key, not a known_hosts entry
URL_PATTERN = re.compile(
    r"^ssh://(?:(?P<user>[A-Za-z_][A-Za-z0-9_.-]*)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?/?$"
)


@dataclass(frozen=True)
class SshAddress:
    """user@host:port of an SSH host."""

    host: str
    user: str = "root"
    port: int = 22

    @classmethod
    def parse(cls, url: str) -> "SshAddress":
        match = URL_PATTERN.fullmatch(url)
        port = int(match["port"]) if match and match["port"] else 22
        if not match or not 0 < port < 65536:
            raise ConfigError(f"host address {url!r}: expected ssh://USER@HOST[:PORT], e.g. ssh://root@10.0.0.5:22.")
        return cls(host=match["host"].strip("[]"), user=match["user"] or "root", port=port)

    def __str__(self) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH's known_hosts names this host (a port other than 22 in brackets)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class SshCredentials:
    """The private key to log in with and the host keys this host may present (known_hosts lines)."""

    private_key: str = field(repr=False)
    host_keys: str = field(repr=False)
    source: str  # where both came from, for error messages (never the key itself)


def credentials_from_files(identity: Path, known_hosts: Path) -> SshCredentials:
    """Credentials as an operator's OpenSSH keeps them: a private key file and a known_hosts file."""
    try:
        private_key = identity.read_text()
    except OSError as error:
        raise ConfigError(
            f"SSH private key {identity} cannot be read ({error.strerror}); pass --identity FILE."
        ) from None
    try:
        host_keys = known_hosts.read_text()
    except OSError:
        host_keys = ""  # an empty pin list: every host key is unknown, and refused with the fingerprint
    return SshCredentials(private_key, host_keys, f"key {identity}, known hosts {known_hosts}")


def load_private_key(text: str, source: str) -> paramiko.PKey:
    """An OpenSSH or PEM private key (Ed25519, ECDSA or RSA) from its text."""
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError, binascii.Error):
            continue
    raise ConfigError(f"SSH private key from {source} is not an unencrypted Ed25519, ECDSA or RSA key.")


def pinned_keys(address: SshAddress, text: str) -> paramiko.HostKeys:
    """The known_hosts lines that name this host; a bare `TYPE BASE64` line pins it too."""
    keys = paramiko.HostKeys()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(KEY_TYPE_PREFIXES):
            line = f"{address.known_hosts_name} {line}"
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except (paramiko.SSHException, binascii.Error, ValueError):
            continue
        if entry is not None:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
    return keys


def fingerprint(key: paramiko.PKey) -> str:
    """SHA256 fingerprint as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def as_root(command: str, root: bool) -> str:
    """A shell command run as root: as it is for root, else through password-less sudo (never a prompt)."""
    return command if root else f"sudo -n -- sh -c {shlex.quote(command)}"


class _UnknownHostKey(paramiko.MissingHostKeyPolicy):
    """Refuse any host key that is not pinned, remembering it so the error can name its fingerprint."""

    def __init__(self) -> None:
        self.offered: paramiko.PKey | None = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        self.offered = key
        raise paramiko.SSHException(f"host key of {hostname} is not pinned")


class SshSession:
    """One SSH host: connected on first use, commands as root (directly or with `sudo -n`)."""

    def __init__(self, address: SshAddress, credentials: SshCredentials) -> None:
        self.address, self.credentials = address, credentials
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._root: bool | None = None
        self._forwarders: dict[str, Forwarder] = {}

    @property
    def name(self) -> str:
        return str(self.address)

    @property
    def user(self) -> str:
        return self.address.user

    # -- connecting ---------------------------------------------------------------
    def _connect(self) -> Connection:
        """A new connection; the host key must match a pinned one, login by key only."""
        address = self.address
        # Only a first connection has certainly changed nothing; a later one (reconnect) may come mid-stage.
        outcome = (
            "Nothing was changed."
            if not self._connections
            else "The run stopped at this stage; its log says what was done."
        )
        pkey = load_private_key(self.credentials.private_key, self.credentials.source)
        policy = _UnknownHostKey()
        connection = Connection(
            address.host,
            user=address.user,
            port=address.port,
            connect_timeout=CONNECT_TIMEOUT,
            config=Config(overrides={"load_ssh_configs": False}),
            connect_kwargs={
                "pkey": pkey,
                "look_for_keys": False,
                "allow_agent": False,
                "banner_timeout": CONNECT_TIMEOUT,
                "auth_timeout": CONNECT_TIMEOUT,
            },
        )
        client = connection.client
        client.set_missing_host_key_policy(policy)
        for name, entries in pinned_keys(address, self.credentials.host_keys).items():
            for kind, key in entries.items():
                client.get_host_keys().add(name, kind, key)
        where = f"{address.user}@{address.host}:{address.port}"
        try:
            connection.open()
        except paramiko.BadHostKeyException as error:
            raise HostError(
                f"host key of {address.host}:{address.port} changed: it offers {fingerprint(error.key)}, "
                f"pinned is {fingerprint(error.expected_key)}; if the host was rebuilt, verify the new key and "
                f"replace the pin ({self.credentials.source}). {outcome}"
            ) from None
        except paramiko.AuthenticationException:
            raise HostError(
                f"SSH login as {where} was refused for key {fingerprint(pkey)}; add its public key to "
                f"~{address.user}/.ssh/authorized_keys on the host. {outcome}"
            ) from None
        except paramiko.SSHException as error:
            if policy.offered is not None:
                raise HostError(
                    f"host key of {address.host}:{address.port} ({fingerprint(policy.offered)}) is not pinned in "
                    f"{self.credentials.source}; verify it on the host (`ssh-keygen -lf "
                    f"/etc/ssh/ssh_host_ed25519_key.pub`) "
                    f"and pin it (`ssh-keyscan -p {address.port} {address.host} >> ~/.ssh/known_hosts`). {outcome}"
                ) from None
            raise HostError(f"SSH connection to {where} failed ({error}). {outcome}") from None
        except (OSError, EOFError) as error:
            causes = list(getattr(error, "errors", {}).values())  # NoValidConnectionsError: one per address tried
            reason = (causes[0] if causes else error).strerror or str(error) or error.__class__.__name__
            raise HostError(
                f"cannot reach {where} over SSH ({reason}); check the address, the port and that "
                f"sshd runs there. {outcome}"
            ) from None
        connection.transport.set_keepalive(30)
        return connection

    def open(self) -> None:
        with self._lock:
            if not self._connections:
                self._connections.append(self._connect())

    def close(self) -> None:
        for forwarder in self._forwarders.values():
            forwarder.close()
        self._forwarders.clear()
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    def channel(self) -> paramiko.Channel:
        """A session channel; sshd allows only MaxSessions per connection, so more connections as needed."""
        self.open()
        with self._lock:
            for connection in self._connections:
                if connection.transport is None or not connection.transport.is_active():
                    continue
                try:
                    return connection.transport.open_session(timeout=CONNECT_TIMEOUT)
                except paramiko.ChannelException:
                    continue  # this connection is at the server's session limit
            connection = self._connect()
            self._connections.append(connection)
            return connection.transport.open_session(timeout=CONNECT_TIMEOUT)

    # -- commands -----------------------------------------------------------------
    def is_root(self) -> bool:
        if self._root is None:
            self._root = self.execute("id -u", what="reading the user id").strip() == "0"
        return self._root

    def as_root(self, command: str) -> str:
        return as_root(command, self.is_root())

    def execute(
        self, command: str, *, what: str, stdin: bytes | None = None, check: bool = True, timeout: float = 600
    ) -> str:
        """Run a shell command on the host; on failure raise a HostError naming `what` and its output's tail."""
        channel = self.channel()
        try:
            channel.exec_command(command)
            if stdin is not None:
                channel.sendall(stdin)
            channel.shutdown_write()
            out, err = _drain(channel, timeout)
            code = channel.recv_exit_status()
        finally:
            channel.close()
        if check and code != 0:
            raise HostError(f"{what} on host {self.name} failed: {tail(err or out)}.")
        return out.decode(errors="replace")

    def put_file(self, local: Path, remote: str) -> None:
        """Copy a file to the host (SFTP, as the login user)."""
        self.open()
        try:
            self._connections[0].put(str(local), remote)
        except (OSError, paramiko.SSHException) as error:
            raise HostError(f"copying {local.name} to {remote} on host {self.name} failed ({error}).") from None

    # -- the Docker engine and published ports ---------------------------------------
    def docker_socket(self) -> str:
        """DOCKER_HOST address of a private socket on this machine that reaches the host's engine. Each connection
        to it is carried by the OpenSSH client (C, multiplexed): dumps and archives pass no Python on this machine."""
        if "docker" not in self._forwarders:
            command = self.as_root("docker system dial-stdio")  # also proves the login before OpenSSH takes over
            folder = Path(tempfile.mkdtemp(prefix="incarnate-ssh-"))  # 0700: only this user reaches the engine
            tunnel = OpenSshTunnel(self.address, self.credentials, command, folder)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(folder / "docker.sock"))

            def cleanup() -> None:
                tunnel.close()
                shutil.rmtree(folder, ignore_errors=True)

            self._forwarders["docker"] = Forwarder(listener, tunnel.carry, cleanup=cleanup)
            atexit.register(self.close)  # a command that never closed its host must not leave OpenSSH masters behind
            tunnel.check()
        return "unix://" + self._forwarders["docker"].address

    def forward_port(self, port: int) -> int:
        """A port on this machine's loopback that reaches the host's 127.0.0.1:`port` (where stacks publish)."""
        key = f"tcp:{port}"
        if key not in self._forwarders:
            self.open()

            def dial() -> paramiko.Channel:
                return self._connections[0].transport.open_channel(
                    "direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0), timeout=CONNECT_TIMEOUT
                )

            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            self._forwarders[key] = Forwarder(listener, partial(_carry_through_channel, dial))
        return int(self._forwarders[key].address.rsplit(":", 1)[1])


def _drain(channel: paramiko.Channel, timeout: float) -> tuple[bytes, bytes]:
    """Read a command's stdout and stderr to the end without letting either fill up."""
    out, err, deadline = bytearray(), bytearray(), time.monotonic() + timeout
    while True:
        if channel.recv_ready():
            out += channel.recv(BLOCK)
        elif channel.recv_stderr_ready():
            err += channel.recv_stderr(BLOCK)
        elif channel.exit_status_ready() and channel.eof_received:
            return bytes(out), bytes(err)
        elif time.monotonic() > deadline:
            raise HostError(f"a command on the SSH host did not finish within {timeout:.0f} s.")
        else:
            time.sleep(0.005)


class Forwarder:
    """Accept local connections; `carry` each (on its own thread) through its own SSH channel to the host."""

    def __init__(
        self, listener: socket.socket, carry: Callable[[socket.socket], None], cleanup: Callable[[], None] | None = None
    ) -> None:
        self.listener, self.carry, self.cleanup = listener, carry, cleanup
        name = listener.getsockname()
        self.address = name if isinstance(name, str) else f"{name[0]}:{name[1]}"
        listener.listen(64)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"ssh-forward {self.address}").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                local, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.carry, args=(local,), daemon=True).start()

    def close(self) -> None:
        self._closed = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        if self.cleanup:
            self.cleanup()


def _carry_through_channel(dial: Callable[[], paramiko.Channel], local: socket.socket) -> None:
    """One local connection through a paramiko channel (light traffic: an app's health and pages)."""
    try:
        channel = dial()
    except (paramiko.SSHException, OSError, HostError):
        local.close()
        return
    try:
        _pump(local, channel)
    finally:
        channel.close()
        local.close()


def _pump(local: socket.socket, channel: paramiko.Channel) -> None:
    """Copy both directions until the remote side ends; a local half-close becomes the channel's EOF."""
    local_open = True
    while True:
        watched = [channel, local] if local_open else [channel]
        ready, _, _ = select.select(watched, [], [], 60)
        if channel in ready:
            data = channel.recv(BLOCK)
            if not data:
                return
            local.sendall(data)
        if local_open and local in ready:
            data = local.recv(BLOCK)
            if data:
                channel.sendall(data)
            else:
                local_open = False
                channel.shutdown_write()


class OpenSshTunnel:
    """Local connections carried to a remote command (`docker system dial-stdio`) by the OpenSSH client: each
    connection becomes an `ssh` whose stdin and stdout are the connection itself, multiplexed over a few master
    connections. paramiko moved a third of what the engine can; OpenSSH's client does the copying and the crypto
    in C (bench/ssh_transport.py).

    The same pins as paramiko's: the host's pinned keys only (a private known_hosts file), the same private key.
    The key is never written to a file: it lives in an anonymous memory file of this process, which `ssh` opens
    through /proc (ssh closes inherited descriptors, so a passed descriptor would not reach it). A master idle for
    IDLE_SECONDS exits by itself, so none outlives a process that was killed."""

    SESSIONS_PER_MASTER = 8  # below sshd's default MaxSessions (10): a refused session would fail a docker call
    IDLE_SECONDS = 60

    def __init__(self, address: SshAddress, credentials: SshCredentials, command: str, folder: Path) -> None:
        self.address, self.command, self.folder = address, command, folder
        self.program = shutil.which("ssh")
        if self.program is None:
            raise HostError(
                f"the OpenSSH client (`ssh`) is missing on this machine, and it carries the engine of host "
                f"{address}; install it (`apt-get install openssh-client`) and run again. Nothing was changed."
            )
        self._key = os.memfd_create("incarnate-ssh-key")  # close-on-exec: ssh reaches it by its /proc path only
        os.fchmod(self._key, 0o600)  # ssh refuses a key others could read
        os.write(self._key, credentials.private_key.encode())
        known_hosts = folder / "known_hosts"
        pins = pinned_keys(address, credentials.host_keys).lookup(address.known_hosts_name) or {}
        write_private(
            known_hosts,
            "".join(f"{address.known_hosts_name} {kind} {key.get_base64()}\n" for kind, key in pins.items()).encode(),
        )
        self.config = folder / "ssh_config"
        write_private(
            self.config,
            "\n".join(
                [
                    "Host *",
                    f"  IdentityFile /proc/{os.getpid()}/fd/{self._key}",
                    "  IdentitiesOnly yes",
                    "  IdentityAgent none",
                    f"  UserKnownHostsFile {known_hosts}",
                    "  GlobalKnownHostsFile /dev/null",
                    "  StrictHostKeyChecking yes",
                    "  UpdateHostKeys no",
                    "  CheckHostIP no",
                    "  BatchMode yes",
                    "  PasswordAuthentication no",
                    "  KbdInteractiveAuthentication no",
                    f"  ConnectTimeout {CONNECT_TIMEOUT}",
                    "  ServerAliveInterval 30",
                    "  Ciphers aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com",
                    "  ControlMaster auto",
                    f"  ControlPersist {self.IDLE_SECONDS}",
                    "  LogLevel ERROR",
                    "",
                ]
            ).encode(),
        )
        self._sessions: list[int] = []  # live sessions per master, the master's socket named by its index
        self._lock = threading.Lock()

    def _ssh(self, *args: str) -> list[str]:
        return [self.program, "-F", str(self.config), "-p", str(self.address.port), "-l", self.address.user, *args]

    def _control_path(self, master: int) -> str:
        return str(self.folder / f"master-{master}")

    def _take_master(self) -> int:
        with self._lock:
            master = next((index for index, live in enumerate(self._sessions) if live < self.SESSIONS_PER_MASTER), None)
            if master is None:
                master = len(self._sessions)
                self._sessions.append(0)
            self._sessions[master] += 1
            return master

    def _release_master(self, master: int) -> None:
        with self._lock:
            self._sessions[master] -= 1

    def check(self) -> None:
        """Open the first master now, so a login OpenSSH refuses is one sentence here, not a broken docker call."""
        result = subprocess.run(
            self._ssh("-S", self._control_path(0), "--", self.address.host, "true"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=CONNECT_TIMEOUT * 3,
        )
        if result.returncode != 0:
            raise HostError(
                f"the OpenSSH client could not log in to {self.address} ({tail(result.stderr)}); "
                f"`ssh -V` must work on this machine. Nothing was changed."
            )

    def carry(self, local: socket.socket) -> None:
        """Hand one local connection to an `ssh` of its own (through a master) and wait until it ends."""
        master = self._take_master()
        try:
            with local:
                process = subprocess.Popen(
                    self._ssh("-S", self._control_path(master), "--", self.address.host, self.command),
                    stdin=local,
                    stdout=local,
                    stderr=subprocess.DEVNULL,
                )
            process.wait()
        finally:
            self._release_master(master)

    def close(self) -> None:
        for master in range(max(1, len(self._sessions))):  # master 0 exists from check() even if nothing was carried
            subprocess.run(
                self._ssh("-S", self._control_path(master), "-O", "exit", "--", self.address.host),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=CONNECT_TIMEOUT,
            )
        os.close(self._key)
