"""The wrapper that hands a dump's stdout on in 1 MB writes, run by this machine's sh and dd: the bytes, the dump's
own exit status and its error message come through unchanged."""

import subprocess

import pytest

from incarnate.datasources.database import in_large_writes


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(in_large_writes(command), capture_output=True)


def test_the_bytes_pass_unchanged_whatever_their_size():
    for size in (0, 1, 65_536, 3_000_001):
        assert len(run("head", "-c", str(size), "/dev/urandom").stdout) == size
    text = run("printf", "%s\\n", 'it\'s a "dump"; $HOME `x`')
    assert text.stdout == b'it\'s a "dump"; $HOME `x`\n' and text.returncode == 0


@pytest.mark.parametrize("status", [1, 2, 3, 141])
def test_the_dumps_exit_status_and_message_are_the_wrappers(status):
    failed = run("sh", "-c", f"echo partial; echo 'Got error: 1049' >&2; exit {status}")
    assert failed.returncode == status
    assert failed.stdout == b"partial\n"
    assert failed.stderr == b"Got error: 1049\n"  # dd's own summary is not in the way
