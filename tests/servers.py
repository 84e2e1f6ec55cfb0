"""Real backup-target servers the suite starts for itself: Samba (smbd) and Azurite, on free
loopback ports, each in its own temporary directory, stopped when the session ends."""

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from incarnate import settings

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's documented, public development key: not a secret.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {log.read_text()[-2000:] if log.exists() else ''}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


@contextmanager
def running(command: list[str], port: int, what: str, log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, process, what, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass
class Samba:
    port: int
    share: str
    username: str
    password: str
    process: subprocess.Popen


@contextmanager
def samba(directory: Path) -> Iterator[Samba]:
    """A private smbd on loopback with one share and one user."""
    port, password = free_port(), "incarnate-test-password"
    share = directory / "share"
    for sub in ("share", "private", "lock", "state", "cache", "pid", "ncalrpc"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    Path("/run/samba").mkdir(parents=True, exist_ok=True)
    conf = directory / "smb.conf"
    conf.write_text(f"""[global]
  server role = standalone server
  smb ports = {port}
  interfaces = 127.0.0.1
  bind interfaces only = yes
  server min protocol = SMB2_10
  passdb backend = tdbsam:{directory}/private/passdb.tdb
  private dir = {directory}/private
  lock directory = {directory}/lock
  state directory = {directory}/state
  cache directory = {directory}/cache
  pid directory = {directory}/pid
  ncalrpc dir = {directory}/ncalrpc
  log file = {directory}/log.smbd
  load printers = no
  printcap name = /dev/null
  disable spoolss = yes
[backups]
  path = {share}
  read only = no
  valid users = root
""")
    subprocess.run(["smbpasswd", "-c", str(conf), "-s", "-a", "root"], input=f"{password}\n{password}\n",
                   text=True, check=True, capture_output=True)
    command = ["smbd", "--foreground", "--no-process-group", f"--configfile={conf}", "--debug-stdout"]
    with running(command, port, "smbd", directory / "smbd.out") as process:
        yield Samba(port=port, share="backups", username="root", password=password, process=process)


@dataclass
class Azurite:
    port: int
    process: subprocess.Popen

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"


@contextmanager
def azurite(directory: Path) -> Iterator[Azurite]:
    binary = settings.home() / "tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        raise RuntimeError(f"Azurite is not installed at {binary}; run `bash scripts/services.sh`")
    port = free_port()
    command = [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(directory),
               "--skipApiVersionCheck", "--loose", "--silent"]
    with running(command, port, "azurite", directory / "azurite.out") as process:
        yield Azurite(port=port, process=process)
