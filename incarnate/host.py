"""A container host: its Docker engine, Compose v2, its shell, and the commands run against them.

Every command goes through `Host`; an SSH host changes how the engine is reached (a socket
forwarded over SSH), never what the stages do.
"""

import getpass
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import docker
import docker.errors

from incarnate import settings
from incarnate.errors import ConfigError, HostError, StageError, tail
from incarnate.ssh import SshAddress, SshSession, as_root, credentials_from_files

BLOCK = 1 << 20


class LocalShell:
    """This machine's shell, for host preparation; commands that need root use `sudo -n` unless we are root."""

    name = "local"

    @property
    def user(self) -> str:
        return getpass.getuser()

    def is_root(self) -> bool:
        return os.geteuid() == 0

    def as_root(self, command: str) -> str:
        return as_root(command, self.is_root())

    def execute(
        self, command: str, *, what: str, stdin: bytes | None = None, check: bool = True, timeout: float = 600
    ) -> str:
        try:
            result = subprocess.run(["sh", "-c", command], input=stdin or b"", capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HostError(f"{what} on host local did not finish within {timeout:.0f} s.") from None
        if check and result.returncode != 0:
            raise HostError(f"{what} on host local failed: {tail(result.stderr or result.stdout)}.")
        return result.stdout.decode(errors="replace")

    def put_file(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)


Shell = LocalShell | SshSession


# What docker and Compose may see of the caller's environment (Host.env): programs, locale, temporary files, the
# engine's address and TLS, the CLI's configuration, and a proxy the CLI may need to reach a remote engine.
PASSED_ON = frozenset(
    {
        *("PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "XDG_RUNTIME_DIR"),
        *("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"),
        *("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"),
    }
)


@dataclass
class Host:
    """A container host: this machine's engine, an engine address (DOCKER_HOST form), or an SSH host."""

    docker_host: str | None = None
    ssh: SshSession | None = field(default=None, repr=False, compare=False)
    _compose: list[str] | None = field(default=None, repr=False, compare=False)
    _engine_version: str | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        if self.ssh:
            return self.ssh.name
        return self.docker_host or "local"

    def engine_address(self) -> str | None:
        """Where the docker CLI, Compose and docker-py reach this host's engine (connects an SSH host)."""
        return self.ssh.docker_socket() if self.ssh else self.docker_host

    def env(self) -> dict[str, str]:
        """The environment docker and Compose run with: how to find programs and reach the engine, nothing else.
        Compose lets the process environment win over the stack's env file, so anything more would let the
        caller's variables (a DB_PASSWORD, an HTTP_PORT, the Prefect password) replace the stack's own or reach
        its containers; the stack's variables come from its env file alone."""
        env = {name: value for name, value in os.environ.items() if name in PASSED_ON}
        address = self.engine_address()
        if address:
            env["DOCKER_HOST"] = address
        return env

    def client(self) -> docker.DockerClient:
        address = self.engine_address()
        return docker.DockerClient(base_url=address) if address else docker.from_env()

    def shell(self) -> Shell:
        """Where host-level commands (OS, packages, files) run."""
        return self.ssh or LocalShell()

    def app_url(self, port: int) -> str:
        """Where this process reads an app published on the host's loopback port `port`."""
        return f"http://127.0.0.1:{self.ssh.forward_port(port) if self.ssh else port}"

    def app_address(self, port: int) -> str:
        """The app's address for an operator: on the host's loopback (stacks publish there only)."""
        return f"http://127.0.0.1:{port}" + ("" if self.name == "local" else f" on {self.name}")

    def close(self) -> None:
        if self.ssh:
            self.ssh.close()

    def check_engine(self) -> str:
        """The engine's version, or a HostError saying how to start it. Asked once in this Host's life (a run, a
        round of the archiver: a thousand stacks on one host are one question, not a thousand)."""
        if self._engine_version is not None:
            return self._engine_version
        where = (
            self.name
            if self.ssh
            else self.docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        )
        try:
            client = self.client()
            try:
                self._engine_version = str(client.version()["Version"])
            finally:
                client.close()
            return self._engine_version
        except docker.errors.DockerException as error:
            reason = str(error).split("(", 1)[-1].rstrip(")") if "(" in str(error) else str(error)
            raise HostError(
                f"Docker engine at {where} does not answer ({tail(reason, 1)}); start it "
                f"(`systemctl start docker`, or `bash scripts/services.sh` on a development machine) and run again."
            ) from None

    def compose_command(self) -> list[str]:
        """`docker compose` if the plugin is v2 or newer, else the docker-compose our venv ships."""
        if self._compose is None:
            candidates = [["docker", "compose"]]
            bundled = Path(sys.executable).with_name("docker-compose")
            if bundled.exists():
                candidates.append([str(bundled)])
            elif shutil.which("docker-compose"):
                candidates.append(["docker-compose"])
            for candidate in candidates:
                result = subprocess.run(
                    [*candidate, "version", "--short"], capture_output=True, text=True, env=self.env()
                )
                major = result.stdout.strip().lstrip("v").split(".", 1)[0]
                if result.returncode == 0 and major.isdigit() and int(major) >= 2:
                    self._compose = candidate
                    break
            else:
                raise HostError(
                    "Compose v2 is missing on this host: neither `docker compose` nor the venv's docker-compose "
                    "answers; run `bash scripts/setup.sh` (or install the docker-compose-plugin package)."
                )
        return self._compose

    def stack_dir(self, stack: str) -> Path:
        """This machine's folder for a stack on this host; each engine has its own, so a move
        to another engine on the same machine keeps both apart."""
        if self.name == "local":
            return settings.stacks_dir() / stack
        return settings.stacks_dir() / ("@" + re.sub(r"[^A-Za-z0-9.-]+", "-", self.name).strip("-")) / stack

    def run(
        self,
        args: Sequence[str],
        *,
        what: str,
        error: type[Exception] = HostError,
        timeout: float | None = None,
        input: bytes | None = None,
    ) -> str:
        """Run a command to completion (`input` on its stdin); on failure raise `error` naming `what` and the
        output's tail."""
        try:
            result = subprocess.run(list(args), capture_output=True, env=self.env(), timeout=timeout, input=input)
        except subprocess.TimeoutExpired:
            raise error(f"{what} on host {self.name} did not finish within {timeout:.0f} s.") from None
        if result.returncode != 0:
            raise error(f"{what} on host {self.name} failed: {tail(result.stderr or result.stdout)}.")
        return result.stdout.decode(errors="replace")

    def attached(self, args: Sequence[str]) -> int:
        """Run a command with this terminal's stdin, stdout and stderr (an operator's own command); its exit code."""
        return subprocess.run(list(args), env=self.env()).returncode

    @contextmanager
    def stream_out(self, args: Sequence[str], *, what: str) -> Iterator[BinaryIO]:
        """A command's stdout as a stream; its exit status is checked when the block ends. A command that gives
        no byte for settings.stall_seconds() is ended, and the block fails saying so."""
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=errors, env=self.env())
            watched = _Progress(process)
            try:
                yield watched
            except BaseException:
                process.kill()
                if not watched.stalled.is_set():
                    raise
            finally:
                watched.close()
                process.stdout.close()
                code = process.wait()
            if watched.stalled.is_set():
                raise stalled(what, self.name, watched.stall)
            if code != 0:
                errors.seek(0)
                raise HostError(f"{what} on host {self.name} failed: {tail(errors.read())}.")

    def stream_in(self, args: Sequence[str], feed: Callable[[BinaryIO], None], *, what: str) -> None:
        """Run a command while `feed` writes its stdin; raise if either fails, never leave it running. A command
        that takes no byte for settings.stall_seconds() is ended, and this fails saying so."""
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                list(args), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, env=self.env()
            )
            watchdog, ended_early = _Watchdog(process), False
            try:
                feed(_Fed(process.stdin, watchdog))
                process.stdin.close()
            except BrokenPipeError:
                ended_early = True  # the command ended (or the watchdog ended it) before the stream did
            except BaseException:
                process.kill()
                process.wait()
                raise
            finally:
                watchdog.close()
            code = process.wait()
            if watchdog.stalled.is_set():
                raise stalled(what, self.name, watchdog.stall)
            errors.seek(0)
            if code != 0:
                raise HostError(f"{what} on host {self.name} failed: {tail(errors.read())}.")
            if ended_early:
                raise HostError(
                    f"{what} on host {self.name} ended before it took the whole stream (exit status 0): "
                    f"{tail(errors.read())}."
                )

    def pipe(self, first: Sequence[str], second: Sequence[str], data: bytes, *, what: str) -> None:
        """`data` into `first`, whose output goes straight into `second` (as a shell's `|`, without a shell); raise
        naming the one that failed."""
        with tempfile.TemporaryFile() as first_errors, tempfile.TemporaryFile() as second_errors:
            producer = subprocess.Popen(
                list(first), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=first_errors, env=self.env()
            )
            consumer = subprocess.Popen(
                list(second), stdin=producer.stdout, stdout=subprocess.DEVNULL, stderr=second_errors, env=self.env()
            )
            producer.stdout.close()  # the consumer holds the pipe's reading end now
            try:
                producer.stdin.write(data)
            except BrokenPipeError:
                pass  # the producer ended early: its exit status says why
            finally:
                producer.stdin.close()
            codes = producer.wait(), consumer.wait()
            for code, errors, side in zip(codes, (first_errors, second_errors), ("reading", "applying"), strict=True):
                if code != 0:
                    errors.seek(0)
                    raise HostError(f"{what} on host {self.name} failed ({side}): {tail(errors.read())}.")


def stalled(what: str, host: str, seconds: float) -> StageError:
    return StageError(
        f"{what} on host {host} made no progress for {seconds:.0f} s (nothing could be read from it: a "
        f"lock in the database, a hung host or store); it was ended and nothing was committed. Find what "
        f"holds it, then run again."
    )


class _Watchdog:
    """Ends a process that makes no progress (no byte read from it, or written to it) for the stall time: a dump or
    a load blocked on a lock would otherwise hold the stack, and its transaction, forever."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self.stall, self.last = process, settings.stall_seconds(), time.monotonic()
        self.stalled, self._done = threading.Event(), threading.Event()
        threading.Thread(target=self._watch, name="stall-watchdog", daemon=True).start()

    def progressed(self) -> None:
        self.last = time.monotonic()

    def _watch(self) -> None:
        while not self._done.wait(min(1.0, self.stall / 5)):
            if time.monotonic() - self.last > self.stall and self.process.poll() is None:
                self.stalled.set()
                self.process.kill()
                return

    def close(self) -> None:
        self._done.set()


class _Progress(io.RawIOBase):
    """A process's stdout, watched: each read is progress."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self.watchdog = process, _Watchdog(process)
        self.stalled, self.stall = self.watchdog.stalled, self.watchdog.stall

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self.process.stdout.readinto(buffer)
        self.watchdog.progressed()
        return count

    def close(self) -> None:
        self.watchdog.close()
        super().close()


class _Fed(io.RawIOBase):
    """A process's stdin, watched: each write the process took is progress."""

    def __init__(self, stdin: BinaryIO, watchdog: _Watchdog) -> None:
        self.stdin, self.watchdog = stdin, watchdog

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        count = self.stdin.write(data)
        self.watchdog.progressed()
        return count

    def flush(self) -> None:
        self.stdin.flush()


def free_port() -> int:
    """A free port on this machine's loopback, for a scratch stack."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def copy_from(source: BinaryIO) -> Callable[[BinaryIO], None]:
    """A feed for `Host.stream_in` that copies a stream as it is, block by block."""

    def feed(sink: BinaryIO) -> None:
        while block := source.read(BLOCK):
            sink.write(block)

    return feed


ENGINE_SCHEMES = ("unix://", "tcp://", "npipe://")
SSH_BLOCK_PREFIX = "incarnate-ssh-host/"


def resolve_host(address: str | None) -> Host:
    """The host an address names: empty for this machine, an engine address, ssh://user@host[:port]
    (key and known_hosts from this machine's OpenSSH files), or incarnate-ssh-host/NAME (a saved block)."""
    address = (address or "").strip()
    if not address:
        return Host()
    if address.startswith(ENGINE_SCHEMES):
        return Host(docker_host=address)
    if address.startswith("ssh://"):
        where = SshAddress.parse(address)
        return Host(ssh=SshSession(where, credentials_from_files(settings.ssh_identity(), settings.ssh_known_hosts())))
    if address.startswith(SSH_BLOCK_PREFIX):  # blocks/resolve.py loads saved blocks; the core never does
        raise ConfigError(
            f"host address {address!r} names a saved SSH host block: resolve it with blocks.resolve.host."
        )
    raise ConfigError(
        f"host address {address!r}: expected nothing (this machine), ssh://USER@HOST[:PORT], "
        f"{SSH_BLOCK_PREFIX}BLOCK_NAME, or a Docker engine address (unix://, tcp://)."
    )
