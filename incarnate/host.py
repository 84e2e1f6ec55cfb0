"""A container host: its Docker engine, Compose v2, and the commands run against them.

Only the local engine (or any engine a DOCKER_HOST-style address reaches) for now; every
command goes through `Host`, so an SSH host can later change how, not what.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import docker
import docker.errors

from incarnate import settings
from incarnate.errors import HostError

BLOCK = 1 << 20


def _tail(text: bytes | str, lines: int = 3) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " / ".join(kept) or "no output"


@dataclass
class Host:
    """A Docker engine: `docker_host` None means this machine's default engine."""

    docker_host: str | None = None
    _compose: list[str] | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.docker_host or "local"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        return env

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host) if self.docker_host else docker.from_env()

    def check_engine(self) -> str:
        """The engine's version, or a HostError saying how to start it."""
        where = self.docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            return self.client().version()["Version"]
        except docker.errors.DockerException as error:
            reason = str(error).split("(", 1)[-1].rstrip(")") if "(" in str(error) else str(error)
            raise HostError(
                f"Docker engine at {where} does not answer ({_tail(reason, 1)}); start it "
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
                result = subprocess.run([*candidate, "version", "--short"], capture_output=True, text=True, env=self.env())
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
        if not self.docker_host:
            return settings.stacks_dir() / stack
        return settings.stacks_dir() / ("@" + re.sub(r"[^A-Za-z0-9.-]+", "-", self.docker_host).strip("-")) / stack

    def run(self, args: Sequence[str], *, what: str, error: type[Exception] = HostError, timeout: float | None = None) -> str:
        """Run a command to completion; on failure raise `error` naming `what` and the output's tail."""
        try:
            result = subprocess.run(list(args), capture_output=True, env=self.env(), timeout=timeout)
        except subprocess.TimeoutExpired:
            raise error(f"{what} on host {self.name} did not finish within {timeout:.0f} s.") from None
        if result.returncode != 0:
            raise error(f"{what} on host {self.name} failed: {_tail(result.stderr or result.stdout)}.")
        return result.stdout.decode(errors="replace")

    @contextmanager
    def stream_out(self, args: Sequence[str], *, what: str) -> Iterator[BinaryIO]:
        """A command's stdout as a stream; its exit status is checked when the block ends."""
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=errors, env=self.env())
            try:
                yield process.stdout
            except BaseException:
                process.kill()
                raise
            finally:
                process.stdout.close()
                code = process.wait()
            if code != 0:
                errors.seek(0)
                raise HostError(f"{what} on host {self.name} failed: {_tail(errors.read())}.")

    def stream_in(self, args: Sequence[str], feed: Callable[[BinaryIO], None], *, what: str) -> None:
        """Run a command while `feed` writes its stdin; raise if either fails, never leave it running."""
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(list(args), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, env=self.env())
            try:
                feed(process.stdin)
                process.stdin.close()
            except BrokenPipeError:
                pass  # the command ended early; its exit status below says why
            except BaseException:
                process.kill()
                process.wait()
                raise
            code = process.wait()
            if code != 0:
                errors.seek(0)
                raise HostError(f"{what} on host {self.name} failed: {_tail(errors.read())}.")


def copy_from(source: BinaryIO) -> Callable[[BinaryIO], None]:
    """A feed for `Host.stream_in` that copies a stream as it is, block by block."""

    def feed(sink: BinaryIO) -> None:
        while block := source.read(BLOCK):
            sink.write(block)

    return feed
