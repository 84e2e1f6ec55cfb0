"""How a dump is read from the engine's exec API: stdout frames into the reader's buffer, stderr kept aside for the
error's tail, and a stream that is not the engine's framing (or breaks inside a frame) refused, never stored."""

import io

import pytest

from incarnate.datasources.engine_api import ERRORS_KEPT, FrameError, Frames


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


class Trickle(io.RawIOBase):
    """A socket that gives at most `most` bytes a read, as the engine's does when frames cross packets."""

    def __init__(self, data: bytes, most: int) -> None:
        self.data, self.most = io.BytesIO(data), most

    def readinto(self, buffer) -> int:
        return self.data.readinto(memoryview(buffer)[: self.most])


@pytest.mark.parametrize("most", [1, 7, 8, 9, 1 << 20])
def test_stdout_is_read_through_and_stderr_kept_apart_however_the_bytes_arrive(most):
    stream = (
        frame(1, b"first line\n") + frame(2, b"warning: ") + frame(1, b"") + frame(1, b"x" * 70_000) + frame(2, b"done")
    )
    frames = Frames(Trickle(stream, most))
    assert frames.read() == b"first line\n" + b"x" * 70_000
    assert bytes(frames.errors) == b"warning: done"


def test_stderr_keeps_only_its_last_part():
    frames = Frames(io.BytesIO(frame(2, b"a" * ERRORS_KEPT) + frame(2, b"the reason")))
    assert frames.read() == b""
    assert len(frames.errors) == ERRORS_KEPT and frames.errors.endswith(b"the reason")


@pytest.mark.parametrize(
    "stream, reason",
    [
        (frame(1, b"0123456789")[:-3], "the stream ended inside a frame, 3 bytes short"),
        (frame(1, b"ok")[:5], "the stream ended inside a frame, 3 bytes short"),
        (b"-- MariaDB dump\n", "a frame header 2d2d204d61726961 names no output stream"),  # a TTY's unframed output
    ],
)
def test_a_stream_that_is_cut_or_not_framed_is_refused(stream, reason):
    with pytest.raises(FrameError, match=f"^{reason}$"):
        Frames(io.BytesIO(stream)).read()
