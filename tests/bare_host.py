"""A host made from nothing: a bare Debian root (mmdebstrap, Debian's own packages), its own network namespace and
its own sshd, reachable from this machine over a veth pair at 10.250.N.2 as root with a key.

No Docker, no Compose, no init system: what `incarnate init ssh://root@...` has to prepare. Its packages come from
Debian's mirror through this machine (NAT); the image registry on this machine's loopback is forwarded onto the
host's loopback, as a registry reachable from every host would be. Privileged containers are refused on the CI
machines; a chroot in namespaces of its own is not.
"""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from incarnate import settings

SUITE = "bookworm"
VARIANT = "minbase"  # Debian's required packages and apt: what a minimal server install has, less its init system
PACKAGES = "openssh-server"
FORWARD = Path(__file__).with_name("forward.py")


@dataclass
class BareHost:
    address: str  # the host's own address, on the veth pair
    key: Path  # root's login key
    known_hosts: Path  # pins the host's key
    root: Path  # its filesystem, seen from this machine

    def url(self) -> str:
        return f"ssh://root@{self.address}"

    def ssh(self, command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                "ssh",
                "-i",
                str(self.key),
                "-o",
                f"UserKnownHostsFile={self.known_hosts}",
                f"root@{self.address}",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )


def root_tarball() -> Path:
    """The bare root as a tar, made once per machine (about a minute) and kept under INCARNATE_HOME/tools."""
    tarball = settings.home() / "tools" / f"bare-{SUITE}-{VARIANT}.tar"
    if not tarball.exists():
        tarball.parent.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial.tar")
        subprocess.run(
            ["mmdebstrap", "--quiet", f"--variant={VARIANT}", f"--include={PACKAGES}", SUITE, str(partial)],
            check=True,
            capture_output=True,
        )
        partial.rename(tarball)
    return tarball


def free_subnet() -> int:
    """N of a 10.250.N.0/30 no interface of this machine uses."""
    taken = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True, check=True).stdout
    return next(n for n in random.sample(range(256), 256) if f" 10.250.{n}." not in taken)


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


# pivot_root, not chroot: runc's exec (Docker's health checks, `docker exec`) joins a container's mount namespace
# at that namespace's root, which under a chroot is this machine's own root, not the container's.
BOOT = """set -e
mount --bind "$ROOT" "$ROOT"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"
mount -t cgroup2 cgroup2 "$ROOT/sys/fs/cgroup"
mount --rbind /dev "$ROOT/dev"
mount -t tmpfs tmpfs "$ROOT/run"
mkdir -p "$ROOT/run/sshd" "$ROOT/.machine"
cd "$ROOT"
pivot_root . .machine
exec /bin/sh -c 'umount -l /.machine && rmdir /.machine && \
  exec /usr/sbin/sshd -D -e -o "ListenAddress=$ADDRESS" -o PermitRootLogin=prohibit-password'
"""


@contextmanager
def bare_host(folder: Path) -> Iterator[BareHost]:
    """The host up and answering SSH; everything of it gone afterwards (its processes die with its PID namespace)."""
    tag = f"{os.getpid() % 10000:04d}{random.randrange(100):02d}"
    root, namespace, outside, inside = folder / "root", f"incarnate-bare-{tag}", f"ib{tag}a", f"ib{tag}b"
    root.mkdir(parents=True)
    run("tar", "-x", "-p", "-f", str(root_tarball()), "-C", str(root))
    key = folder / "root_key"
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bare-host", "-f", str(key))
    (root / "root" / ".ssh").mkdir(mode=0o700, exist_ok=True)
    shutil.copy(key.with_suffix(".pub"), root / "root" / ".ssh" / "authorized_keys")
    net = free_subnet()
    gateway, address, subnet = f"10.250.{net}.1", f"10.250.{net}.2", f"10.250.{net}.0/30"
    known_hosts = folder / "known_hosts"
    host_key = " ".join((root / "etc" / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()[:2])
    known_hosts.write_text(f"{address} {host_key}\n")
    rules = [
        ("nat", "POSTROUTING", "-s", subnet, "!", "-o", outside, "-j", "MASQUERADE"),
        ("filter", "FORWARD", "-s", subnet, "-j", "ACCEPT"),
        ("filter", "FORWARD", "-d", subnet, "-j", "ACCEPT"),
    ]
    processes: list[subprocess.Popen] = []
    try:
        run("ip", "netns", "add", namespace)
        run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        run("ip", "link", "set", inside, "netns", namespace)
        run("ip", "addr", "add", f"{gateway}/30", "dev", outside)
        run("ip", "link", "set", outside, "up")
        for command in (
            ("ip", "addr", "add", f"{address}/30", "dev", inside),
            ("ip", "link", "set", inside, "up"),
            ("ip", "link", "set", "lo", "up"),
            ("ip", "route", "add", "default", "via", gateway),
        ):
            run("ip", "netns", "exec", namespace, *command)
        for table, chain, *rule in rules:
            run("iptables", "-t", table, "-I", chain, *rule)
        registry = settings.registry().rsplit(":", 1)[-1]
        in_namespace = ("ip", "netns", "exec", namespace)
        for command in (
            (sys.executable, str(FORWARD), f"{gateway}:{registry}", f"127.0.0.1:{registry}"),
            (*in_namespace, sys.executable, str(FORWARD), f"127.0.0.1:{registry}", f"{gateway}:{registry}"),
        ):
            processes.append(subprocess.Popen(command, start_new_session=True))
        with open(folder / "boot.log", "ab") as log:
            processes.append(
                subprocess.Popen(
                    [
                        *in_namespace,
                        "unshare",
                        "--mount",
                        "--pid",
                        "--fork",
                        "--propagation",
                        "private",
                        "sh",
                        "-c",
                        BOOT,
                    ],
                    env={**os.environ, "ROOT": str(root), "ADDRESS": address},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        wait_for_ssh(address, folder / "boot.log", processes[-1])
        yield BareHost(address, key, known_hosts, root)
    finally:
        for process in reversed(processes):
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the host's PID namespace ends with its first process
            process.wait()
        kill_rooted_in(root)  # what is left of them while the kernel takes that namespace down
        for table, chain, *rule in rules:
            subprocess.run(["iptables", "-t", table, "-D", chain, *rule], capture_output=True)
        subprocess.run(["ip", "link", "del", outside], capture_output=True)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        # The host's mounts lived in its own mount namespace, gone with its processes: only its files are left.
        shutil.rmtree(root, ignore_errors=True)


def kill_rooted_in(root: Path) -> None:
    """Kill every process whose root directory is in `root` (the host's own, and its containers' built under it)
    until none is left."""
    for _ in range(50):
        found = []
        for entry in Path("/proc").iterdir():
            with suppress(OSError):
                if entry.name.isdigit() and os.readlink(entry / "root").startswith(str(root)):
                    found.append(int(entry.name))
        if not found:
            return
        for pid in found:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def wait_for_ssh(address: str, log: Path, boot: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if boot.poll() is not None:
            raise RuntimeError(f"the bare host's sshd exited: {log.read_text()[-2000:]}")
        with socket.socket() as probe, suppress(OSError):
            probe.settimeout(1)
            probe.connect((address, 22))
            return
        time.sleep(0.3)
    raise RuntimeError(f"the bare host's sshd did not answer at {address}:22 within {seconds:g} s")
