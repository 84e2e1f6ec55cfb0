"""How a backup reads the engine's archive of a volume: a stream the engine gave up on, or one that stalls, fails
the artifact with one sentence instead of being stored as a backup."""

import io
import tarfile
from types import SimpleNamespace

import pytest
import urllib3.exceptions

from incarnate.datasources.volume import _EngineArchive
from incarnate.errors import HostError, StageError


class Raw:
    """The HTTP response's body: `data`, then what `then` raises (or the end)."""

    def __init__(self, data: bytes, then: Exception | None = None) -> None:
        self.data, self.then = io.BytesIO(data), then

    def readinto(self, buffer) -> int:
        count = self.data.readinto(buffer)
        if count == 0 and self.then:
            raise self.then
        return count


def engine_archive(data: bytes, then: Exception | None = None) -> _EngineArchive:
    return _EngineArchive(SimpleNamespace(raw=Raw(data, then)), "archiving volume acme_files", "local")


def tar_of(size: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as out:
        info = tarfile.TarInfo("./data")
        info.size = size
        out.addfile(info, io.BytesIO(b"d" * size))
    return buffer.getvalue()


def test_a_whole_archive_reads_through():
    data = tar_of(100_000)
    assert engine_archive(data).read() == data


def test_an_archive_the_engine_gave_up_on_fails_naming_the_volume_and_saying_what_to_do():
    cut = tar_of(100_000)[:50_000]  # a file shrank as it was read: the engine's writer ends the stream there
    with pytest.raises(HostError) as failed:  # retried by the backup stage, as a file that changed under tar was
        engine_archive(cut).read()
    assert str(failed.value) == (
        "archiving volume acme_files on host local: the engine's archive ended before tar's end "
        "marker (a file shrank or went away as it was read, and the engine dropped the rest); "
        "nothing was committed. Run the backup again."
    )


def test_a_stalled_engine_fails_as_a_stalled_dump_does(monkeypatch):
    monkeypatch.setenv("INCARNATE_STALL_SECONDS", "7")
    stalled = engine_archive(tar_of(10)[:512], urllib3.exceptions.ReadTimeoutError(None, "/archive", "read timed out"))
    with pytest.raises(StageError, match=r"^archiving volume acme_files on host local made no progress for 7 s "):
        stalled.read()


def test_a_broken_stream_is_a_host_failure_in_one_sentence():
    broken = engine_archive(b"", urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead"))
    with pytest.raises(
        HostError,
        match=r"^archiving volume acme_files on host local failed: the engine's stream broke "
        r"\(Connection broken: IncompleteRead\)\.$",
    ):
        broken.read()
