"""A command's output read from the engine's exec API (how a backup reads a dump), against the real engine: every
byte arrives, however soon the command writes after it starts."""

import subprocess

import pytest

from incarnate.datasources.engine_api import exec_out
from incarnate.datasources.helper import ensure_helper
from incarnate.errors import HostError
from incarnate.host import Host


@pytest.fixture(scope="module")
def container():
    name = subprocess.run(
        ["docker", "run", "--detach", "--rm", "--network", "none", "--init", ensure_helper(Host()), "sleep", "600"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    yield name
    subprocess.run(["docker", "rm", "--force", name], capture_output=True)


def read(container: str, command: list[str]) -> bytes:
    with exec_out(Host(), container, command, user=None, what="reading a test command") as stream:
        return stream.read()


def test_short_outputs_written_at_once_arrive_whole(container):
    # This engine (20.10) sends its reply well before a command's first output, so this passed on the raw-socket read
    # too; the loss of output sent with the reply (docker/docker-py#3332) is proven by
    # tests/unit/test_exec_readahead.py.
    for attempt in range(40):
        assert (
            read(container, ["printf", f"first bytes of attempt {attempt}"])
            == f"first bytes of attempt {attempt}".encode()
        )


def test_large_output_and_its_stderr_arrive_whole(container):
    script = "head -c 3000000 /dev/zero | tr '\\0' x; echo warning >&2; printf end"
    assert read(container, ["sh", "-c", script]) == b"x" * 3_000_000 + b"end"


def test_a_failing_command_names_its_exit_status_and_its_last_words(container):
    with pytest.raises(HostError, match=r"^reading a test command on host local failed \(exit 3\): no such table\.$"):
        read(container, ["sh", "-c", "echo partial; echo no such table >&2; exit 3"])
