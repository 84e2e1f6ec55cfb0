"""Docker engine over SSH: throughput and memory of streams through incarnate's SSH channels,
against the same engine reached directly, in one run.

Into the engine is what a restore does (a volume's archive, one file of zeros, extracted by the engine into a fresh
volume: incarnate's own `extract`); out of the engine is what a backup does (that volume read back as the engine's
archive: incarnate's own `archive`).

Starts its own sshd on a free loopback port (the test suite's helper), whose sessions reach
this machine's engine; so both paths end at the same engine and only the transport differs.
Prints MB/s each way for each path, the ratio SSH/direct, and how much this process's peak
memory grew while the data passed (it must not grow with the size: nothing is staged). It also
measures plain OpenSSH (`ssh HOST head -c N /dev/zero`, no engine) on the same sshd: with both
ends on one machine the engine and SSH share its cores, so the engine through SSH can at best
reach 1 / (1/direct + 1/plain ssh); the ratio to that bound is printed too.

    .venv/bin/python bench/ssh_transport.py [--mb 500]
"""

import argparse
import io
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from incarnate.datasources.volume import archive, extract  # noqa: E402
from incarnate.host import Host  # noqa: E402
from incarnate.ssh import SshAddress, SshSession, credentials_from_files  # noqa: E402
from tests.servers import sshd  # noqa: E402

BLOCK = 1 << 20


class Zeros:
    """A readable stream of `size` zero bytes, without holding them."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, size: int) -> bytes:
        take = min(size, self.left)
        self.left -= take
        return bytes(take)


class Chain(io.RawIOBase):
    """The streams read one after the other, as one."""

    def __init__(self, *streams) -> None:
        self.streams = list(streams)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self.streams:
            block = self.streams[0].read(len(buffer))
            if block:
                buffer[: len(block)] = block
                return len(block)
            self.streams.pop(0)
        return 0


def zeros_archive(size: int) -> io.BufferedReader:
    """A tar archive of one file of `size` zero bytes, made as it is read."""
    member = tarfile.TarInfo("./zeros")
    member.size = size
    return io.BufferedReader(
        Chain(
            io.BytesIO(member.tobuf(tarfile.PAX_FORMAT)),
            Zeros(size),
            io.BytesIO(bytes(-size % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE)),
        ),
        BLOCK,
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(host: Host, megabytes: int) -> dict[str, float]:
    """Into a fresh volume as restore's `extract` writes, then out of it as a backup's `archive` reads."""
    size = megabytes * BLOCK
    before = peak_rss_mb()
    volume = f"bench-ssh-{uuid.uuid4().hex[:8]}"
    host.run(["docker", "volume", "create", volume], what="creating a volume")
    try:
        began = time.perf_counter()
        extract(host, volume, zeros_archive(size))
        in_seconds = time.perf_counter() - began
        began = time.perf_counter()
        with archive(host, volume) as stream:
            received = 0
            while block := stream.read(BLOCK):
                received += len(block)
        out_seconds = time.perf_counter() - began
    finally:
        host.run(["docker", "volume", "rm", volume], what="removing the volume")
    assert received > size, f"received {received} bytes, the file alone is {size}"
    return {"out": megabytes / out_seconds, "in": megabytes / in_seconds, "rss_growth": peak_rss_mb() - before}


def plain_ssh_mb_per_s(server, megabytes: int) -> float:
    """OpenSSH alone, out of the host, with the cipher incarnate's connections prefer: the transport's own ceiling."""
    command = [
        "ssh",
        "-F",
        "/dev/null",
        "-c",
        "aes128-gcm@openssh.com",
        "-o",
        f"UserKnownHostsFile={server.known_hosts}",
        "-o",
        "BatchMode=yes",
        "-i",
        str(server.client_key),
        "-p",
        str(server.port),
        "-l",
        "root",
        "127.0.0.1",
        f"head -c {megabytes * BLOCK} /dev/zero",
    ]
    began = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    return megabytes / (time.perf_counter() - began)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500, help="megabytes each way (default 500)")
    args = parser.parse_args()
    direct = measure(Host(), args.mb)
    with tempfile.TemporaryDirectory() as folder, sshd(Path(folder), "unix:///var/run/docker.sock") as server:
        host = Host(
            ssh=SshSession(
                SshAddress("127.0.0.1", "root", server.port),
                credentials_from_files(server.client_key, server.known_hosts),
            )
        )
        try:
            over_ssh = measure(host, args.mb)
        finally:
            host.close()
        plain = plain_ssh_mb_per_s(server, args.mb)
    print(f"{args.mb} MB each way: in extracted by the engine into a volume, out that volume's archive from the engine")
    print(f"{'path':<8}{'out MB/s':>10}{'in MB/s':>10}{'peak RSS growth MB':>20}")
    for name, figures in (("direct", direct), ("ssh", over_ssh)):
        print(f"{name:<8}{figures['out']:>10.0f}{figures['in']:>10.0f}{figures['rss_growth']:>20.1f}")
    print(f"ratio ssh/direct: out {over_ssh['out'] / direct['out']:.2f}, in {over_ssh['in'] / direct['in']:.2f}")
    bound = {way: 1 / (1 / direct[way] + 1 / plain) for way in ("out", "in")}
    print(
        f"plain OpenSSH on this sshd (no engine): {plain:.0f} MB/s; bound for the engine through SSH with both ends on "
        f"this machine: out {bound['out']:.0f}, in {bound['in']:.0f} MB/s; ratio ssh/bound: "
        f"out {over_ssh['out'] / bound['out']:.2f}, in {over_ssh['in'] / bound['in']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
