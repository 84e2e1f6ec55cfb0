"""The Docker engine's API where a stage streams data through it: a command's output read straight from the exec
API, and the engine's refusals said as one sentence. No docker CLI process sits between the container and us: the
CLI copies every byte once more and costs a process's CPU (README, bench/recovery_speed.py)."""

import io
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import docker.errors
import requests

from incarnate import settings
from incarnate.errors import HostError, tail
from incarnate.host import Host, stalled

STDOUT, STDERR = 1, 2
HEADER = 8  # the engine's multiplexed stream: [stream, 0, 0, 0, size as 4 bytes big-endian] before each frame
ERRORS_KEPT = 64 << 10  # of stderr: enough for the error's tail, bounded whatever the command writes there


class FrameError(Exception):
    """The engine's multiplexed stream is not what it says it is, or broke inside a frame."""


class Frames(io.RawIOBase):
    """Stdout of a multiplexed exec stream, read into the caller's buffer without a copy; stderr is kept aside
    (its last ERRORS_KEPT bytes). `raw` is any readable binary stream (the engine's, once past its reply)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.errors = raw, bytearray()
        self._left, self._stream = 0, STDOUT

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while len(buffer):
            if not self._left:
                if not self._next_header():
                    return 0
                continue  # a frame may be empty
            if self._stream == STDOUT:
                count = self.raw.readinto(memoryview(buffer)[: self._left])
                if not count:
                    raise FrameError(f"the stream ended inside a frame, {self._left} bytes short")
                self._left -= count
                return count
            self.errors += self._exactly(self._left)
            del self.errors[:-ERRORS_KEPT]
            self._left = 0
        return 0

    def _next_header(self) -> bool:
        """Read the next frame's header; False at the stream's end."""
        header = self._exactly(HEADER, at_end_ok=True)
        if not header:
            return False
        if header[0] not in (STDOUT, STDERR) or any(header[1:4]):
            raise FrameError(f"a frame header {bytes(header).hex()} names no output stream")
        self._stream, self._left = header[0], int.from_bytes(header[4:], "big")
        return True

    def _exactly(self, size: int, at_end_ok: bool = False) -> bytearray:
        data = bytearray(size)
        view, got = memoryview(data), 0
        while got < size:
            count = self.raw.readinto(view[got:])
            if not count:
                if at_end_ok and got == 0:
                    return bytearray()
                raise FrameError(f"the stream ended inside a frame, {size - got} bytes short")
            got += count
        return data


@contextmanager
def exec_out(host: Host, container: str, command: list[str], *, user: str | None, what: str) -> Iterator[BinaryIO]:
    """`command`'s stdout in `container` as a stream, as `docker exec` would give it; its exit status is checked
    when the block ends (stderr's tail names a failure). No byte for settings.stall_seconds() fails the read. The
    command is not ended when the block is left early: like a killed `docker exec`, it ends when it next writes,
    and a backup ends what is left by `Database.end_orphans`."""
    where = f"{what} on host {host.name}"
    client = host.client()
    api = client.api
    try:
        with engine_refusals(where):
            exec_id = api.exec_create(container, command, stdout=True, stderr=True, user=user or "")["Id"]
            # docker-py's exec_start(socket=True) is this POST, but it hands out the raw socket, past the HTTP
            # layer's read buffer: output the engine sent with its reply's headers would be lost (docker-py#3332).
            response = api.post(
                engine_url(api, f"exec/{exec_id}/start"),
                json={"Tty": False, "Detach": False},
                headers={"Connection": "Upgrade", "Upgrade": "tcp"},
                stream=True,
            )
        with response:
            if response.status_code not in (101, 200):  # 200: an engine that streams without the upgrade
                raise HostError(f"{where} failed: {tail(response.text, 1)}.")
            stream = response.raw._fp.fp  # http.client's buffered reader, past the headers, holding what came with them
            _socket_of(stream.raw).settimeout(settings.stall_seconds())
            frames = Frames(stream)
            yield _Checked(frames, what, host.name)
        _check_exit(api, exec_id, frames, where)
    finally:
        client.close()


def _socket_of(stream) -> socket.socket:
    """The socket under the reader: a socket's file object on a Unix socket or TCP, a TLS socket's inner socket."""
    return getattr(stream, "_sock", stream)


class _Checked(io.RawIOBase):
    """The frames, their failures said as one sentence naming what and where."""

    def __init__(self, frames: Frames, what: str, host: str) -> None:
        self.frames, self.what, self.host = frames, what, host

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            return self.frames.readinto(buffer)
        except TimeoutError:
            raise stalled(self.what, self.host, settings.stall_seconds()) from None
        except (FrameError, OSError) as error:
            raise HostError(f"{self.what} on host {self.host} failed: the engine's stream broke ({error}).") from None


def _check_exit(api: docker.APIClient, exec_id: str, frames: Frames, where: str) -> None:
    """The command's exit status, once the engine has it (it may note the end a moment after the stream closes)."""
    deadline = time.monotonic() + 5
    with engine_refusals(where):
        while (state := api.exec_inspect(exec_id))["Running"]:
            if time.monotonic() > deadline:
                raise HostError(f"{where}: the stream ended, but the command still ran 5 s later.")
            time.sleep(0.02)
    if state["ExitCode"] != 0:
        raise HostError(f"{where} failed (exit {state['ExitCode']}): {tail(bytes(frames.errors))}.")


def engine_url(api: docker.APIClient, path: str) -> str:
    """The address of `path` in the engine's API, at the version docker-py agreed with it."""
    return f"{api.base_url}/v{api.api_version}/{path}"


@contextmanager
def engine_refusals(where: str) -> Iterator[None]:
    """The engine's and the HTTP layer's errors as one sentence saying what failed where."""
    try:
        yield
    except docker.errors.APIError as error:
        raise HostError(f"{where} failed: {tail(str(error.explanation), 1)}.") from None
    except requests.exceptions.RequestException as error:
        raise HostError(f"{where} failed: {tail(str(error), 1)}.") from None
