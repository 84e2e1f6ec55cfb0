"""Real backup-target servers the suite starts for itself: Samba (smbd) and Azurite, on free
loopback ports, each in its own temporary directory, stopped when the session ends."""

import socket
import subprocess
import time
import uuid
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
            raise RuntimeError(
                f"{what} exited with {process.returncode}: {log.read_text()[-2000:] if log.exists() else ''}"
            )
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
    subprocess.run(
        ["smbpasswd", "-c", str(conf), "-s", "-a", "root"],
        input=f"{password}\n{password}\n",
        text=True,
        check=True,
        capture_output=True,
    )
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
    command = [
        str(binary),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(directory),
        "--skipApiVersionCheck",
        "--loose",
        "--silent",
    ]
    with running(command, port, "azurite", directory / "azurite.out") as process:
        yield Azurite(port=port, process=process)


@dataclass
class SshServer:
    """A real sshd on 127.0.0.1 whose sessions' docker commands reach `docker_host`: the "remote" host."""

    port: int
    host_key: str  # the public host key, `TYPE BASE64`
    client_key: Path  # private key authorized for every user
    known_hosts: Path  # pins host_key for [127.0.0.1]:port
    folder: Path

    def url(self, user: str = "root") -> str:
        return f"ssh://{user}@127.0.0.1:{self.port}"

    def new_key(self, name: str) -> Path:
        """A key pair sshd knows nothing of (a wrong login key, or another host's key)."""
        path = self.folder / name
        if not path.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
        return path


@contextmanager
def sshd(folder: Path, docker_host: str) -> Iterator[SshServer]:
    """Debian's OpenSSH server with its own config, host key and authorized_keys, on a free port."""
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(folder / name)], check=True
        )
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    port = free_port()
    host_key = " ".join((folder / "host_key.pub").read_text().split()[:2])
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}\n")
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {folder / 'host_key'}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'} .ssh/authorized_keys",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                f"SetEnv DOCKER_HOST={docker_host}",
                "Subsystem sftp internal-sftp",
                "MaxStartups 100",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    with running(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], port, "sshd", folder / "sshd.log"):
        yield SshServer(port, host_key, folder / "client_key", folder / "known_hosts", folder)


def save_store_block(kind: str, samba_server, azurite_server) -> str | None:
    """A store block of this kind saved on the Prefect server under a fresh name: its slug (None for local)."""
    from blocks.stores import AzureBlobBackupStore, SmbShareStore

    name = f"test-{uuid.uuid4().hex[:8]}"
    if kind == "smb":
        SmbShareStore(
            server="127.0.0.1",
            share=samba_server.share,
            path=name,
            username=samba_server.username,
            password=samba_server.password,
            port=samba_server.port,
        ).save(name)
        return f"incarnate-smb-store/{name}"
    if kind == "azure":
        AzureBlobBackupStore(
            account_url=azurite_server.account_url,
            account_name=AZURITE_ACCOUNT,
            account_key=AZURITE_KEY,
            container=name,
        ).save(name)
        return f"incarnate-azure-blob-store/{name}"
    return None


@dataclass
class PrivateRegistry:
    address: str
    username: str
    password: str
    ca: Path  # where the engine trusts its CA: /etc/docker/certs.d/ADDRESS/ca.crt


def issue_test_certificate(folder: Path, host: str) -> tuple[Path, Path, Path]:
    """A CA of the test's own and a server certificate it signs for `host` (an IP address): ca, cert, key."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "incarnate test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@contextmanager
def private_registry(folder: Path) -> Iterator[PrivateRegistry]:
    """Debian's docker-registry with htpasswd (bcrypt) auth and TLS from a test CA, which the engine is told to
    trust."""
    import secrets
    import shutil

    import bcrypt

    port, username, password = free_port(), "vendor", secrets.token_urlsafe(16)
    address = f"127.0.0.1:{port}"
    ca, cert, key = issue_test_certificate(folder, "127.0.0.1")
    (folder / "htpasswd").write_text(f"{username}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}\n")
    (folder / "config.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
        f"http:\n  addr: {address}\n  tls:\n    certificate: {cert}\n    key: {key}\n"
        f"auth:\n  htpasswd:\n    realm: incarnate-test\n    path: {folder / 'htpasswd'}\n"
    )
    trusted = Path("/etc/docker/certs.d") / address
    trusted.mkdir(parents=True, exist_ok=True)
    shutil.copy(ca, trusted / "ca.crt")
    try:
        with running(
            ["docker-registry", "serve", str(folder / "config.yml")],
            port,
            "the private registry",
            folder / "registry.log",
        ):
            yield PrivateRegistry(address, username, password, trusted / "ca.crt")
    finally:
        shutil.rmtree(trusted, ignore_errors=True)


class WebhookReceiver:
    """A real HTTP server on the loopback that records every JSON body POSTed to it: where alerts go in tests."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body or b"{}"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_engine(name: str, address_pool: str, cgroup: str | None = None) -> str:
    """A Docker engine of its own beside the machine's (socket /run/NAME.sock, data /var/lib/NAME, log
    /var/log/incarnate/NAME.log), its address once it answers; one that answers already is left as it is.
    `cgroup`: a cgroup (v1) path the daemon and its containers are kept in (a cpuset: a host of fewer cores)."""
    import json
    import os

    address = f"unix:///run/{name}.sock"
    probe = ["docker", "-H", address, "info"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return address
    os.makedirs("/var/log/incarnate", exist_ok=True)
    # A configuration file of its own: the machine's /etc/docker/daemon.json is the first engine's (it may set
    # the address pools the README suggests, which dockerd refuses to take from a file and a flag at once).
    # Its own address pool; iptables stays on, Compose's service names need its DNS rules.
    config: dict[str, object] = {"default-address-pools": [{"base": address_pool, "size": 24}]}
    if cgroup:
        config["cgroup-parent"] = cgroup
    Path(f"/run/{name}.json").write_text(json.dumps(config))
    log = Path(f"/var/log/incarnate/{name}.log")
    with open(log, "ab") as output:
        subprocess.Popen(
            ["dockerd", "--config-file", f"/run/{name}.json", "--data-root", f"/var/lib/{name}"]
            + ["--exec-root", f"/run/{name}", "--pidfile", f"/run/{name}.pid", "-H", address, "--bridge", "none"],
            stdout=output,
            stderr=output,
            start_new_session=True,
            # The daemon joins the cgroup before it starts containerd and the shims: they inherit it.
            preexec_fn=(lambda: Path(f"/sys/fs/cgroup/cpuset{cgroup}/cgroup.procs").write_text(str(os.getpid())))
            if cgroup
            else None,
        )
    deadline = time.monotonic() + 60
    while subprocess.run(probe, capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Docker engine {name} did not start within 60 s; see {log}")
        time.sleep(0.5)
    return address


PREFECT_DB_PORT = "5433"  # scripts/prefect-server.sh's default port for its PostgreSQL cluster


def psql(database: str, sql: str, port: str = PREFECT_DB_PORT) -> str:
    """One SQL statement's output, as PostgreSQL's superuser on the cluster scripts/prefect-server.sh makes."""
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "--port", port, "-d", database, "-tAc", sql],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
