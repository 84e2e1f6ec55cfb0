"""Create host, on the host itself: root, the OS, Docker Engine and Compose v2, and the host
settings of stack.yaml (directories, DNS names, the backup share).

The same steps run through this machine's shell or an SSH host's. Each is idempotent and says
what it found or did; the checks that can refuse (root, OS) come before anything changes.
"""

import platform
import re
import shlex
import sys
from pathlib import Path

from incarnate.config import HostSettings, NfsShare, SmbShare
from incarnate.errors import HostError
from incarnate.host import Shell

COMPOSE_PLUGIN = "/usr/local/lib/docker/cli-plugins/docker-compose"
DEBIAN_FAMILY = ("debian", "ubuntu")
APT_INSTALL = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends"


def prepare_host(shell: Shell, stack: str, settings: HostSettings) -> list[str]:
    """Make the host ready for `stack`; returns the lines it printed, one per step."""
    lines: list[str] = []

    def step(text: str | None) -> None:
        if text:
            lines.append(text)
            print(f"create host {shell.name}: {text}")  # looked up at call time: a Prefect run logs it

    step(check_root(shell))
    system, machine = read_os(shell), platform_of(shell)
    step(f"{system.get('PRETTY_NAME', 'unknown OS')} ({machine})")
    step(ensure_docker(shell, system))
    step(ensure_compose(shell, machine))
    step(ensure_directories(shell, settings.directories))
    step(ensure_dns_names(shell, stack, settings.dns_names))
    step(ensure_backup_share(shell, stack, settings.backup_share))
    return lines


def check_root(shell: Shell) -> str:
    if shell.is_root():
        return f"logged in as {shell.user} (root)"
    try:
        shell.execute("sudo -n true", what="checking sudo")
    except HostError:
        raise HostError(
            f"user {shell.user} on host {shell.name} is not root and has no password-less sudo; log in as root or "
            f"allow it (`{shell.user} ALL=(ALL) NOPASSWD: ALL` in /etc/sudoers.d/incarnate). Nothing was changed."
        ) from None
    return f"logged in as {shell.user} (password-less sudo)"


def parse_os_release(text: str) -> dict[str, str]:
    """/etc/os-release as a mapping: KEY=value lines, quotes removed."""
    pairs = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Z_]+", key):
            pairs[key] = value.strip().strip('"').strip("'")
    return pairs


def read_os(shell: Shell) -> dict[str, str]:
    return parse_os_release(shell.execute("cat /etc/os-release", what="reading /etc/os-release"))


def platform_of(shell: Shell) -> str:
    return shell.execute("uname -m", what="reading the machine type").strip()


def require_debian(shell: Shell, system: dict[str, str], missing: str) -> None:
    family = {system.get("ID", "")} | set(system.get("ID_LIKE", "").split())
    if not family & set(DEBIAN_FAMILY):
        raise HostError(
            f"host {shell.name} runs {system.get('PRETTY_NAME', 'an unknown OS')} and lacks {missing}; "
            f"incarnate installs it only on Debian (12 verified): install it yourself and run again."
        )


def ensure_docker(shell: Shell, system: dict[str, str]) -> str:
    """Docker Engine from the OS's own packages if missing, started if it does not answer; then it must answer."""
    done = "present"
    if not shell.execute("command -v docker || true", what="looking for docker").strip():
        require_debian(shell, system, "Docker Engine")
        try:
            shell.execute(shell.as_root(APT_INSTALL + " docker.io"), what="installing Docker Engine (docker.io)")
        except HostError as error:
            reason = str(error).split(" failed: ", 1)[-1].rstrip(".")
            raise HostError(
                f"host {shell.name} has no Docker Engine, and installing Debian's docker.io there failed ({reason}); "
                f"check its apt sources and its way to the mirror, or install docker.io yourself, and run again. "
                f"Nothing else was changed."
            ) from None
        done = "installed"
    version = engine_version(shell)
    if version is None:
        started = start_engine(shell)
        version = engine_version(shell, wait_seconds=ENGINE_START_SECONDS)
        if version is None:
            raise HostError(
                f"Docker Engine on host {shell.name} does not answer, though it was {started}; see its log there "
                f"({ENGINE_LOG} or `journalctl -u docker`), start it, and run again."
            )
        done += f", {started}"
    return f"Docker Engine {version} {done}"


ENGINE_START_SECONDS = 30
ENGINE_LOG = "/var/log/dockerd.log"
WITHOUT_INIT = (
    f"setsid dockerd >>{ENGINE_LOG} 2>&1 </dev/null & "
    "for i in $(seq 50); do [ -S /var/run/docker.sock ] && break; sleep 0.2; done"
)


def engine_version(shell: Shell, wait_seconds: int = 0) -> str | None:
    """The engine's version, or None while it does not answer (asked each second for up to `wait_seconds`)."""
    ask = "docker version --format '{{.Server.Version}}' 2>/dev/null"
    command = (
        f"for i in $(seq {wait_seconds}); do {ask} && exit 0; sleep 1; done; true" if wait_seconds else f"{ask} || true"
    )
    return shell.execute(shell.as_root(command), what="asking the Docker Engine").strip() or None


def start_engine(shell: Shell) -> str:
    """Start the engine the host's way: systemd's unit (enabled, so it comes back after a reboot) when systemd runs
    the host; else dockerd in the background, as a host without an init system (a container, a chroot) needs."""
    if shell.execute("[ -d /run/systemd/system ] && echo systemd || true", what="looking for systemd").strip():
        shell.execute(shell.as_root("systemctl enable --now docker"), what="starting Docker Engine (systemctl)")
        return "started by systemd (enabled)"
    shell.execute(shell.as_root(WITHOUT_INIT), what="starting Docker Engine (no init system: dockerd)")
    return f"started without an init system (dockerd in the background, log {ENGINE_LOG}; not started on a reboot)"


def compose_version(shell: Shell) -> str | None:
    """`docker compose` v2 or newer on the host, or None."""
    text = shell.execute(
        shell.as_root("docker compose version --short 2>/dev/null || true"), what="asking Compose"
    ).strip()
    major = text.lstrip("v").split(".", 1)[0]
    return text if major.isdigit() and int(major) >= 2 else None


def ensure_compose(shell: Shell, machine: str) -> str:
    """Compose v2 as a Docker CLI plugin; if missing, the very binary this machine runs is copied there."""
    version = compose_version(shell)
    if version:
        return f"Compose {version} present"
    bundled = Path(sys.executable).with_name("docker-compose")
    if not bundled.is_file() or machine != platform.machine():
        raise HostError(
            f"Compose v2 is missing on host {shell.name} ({machine}); install the docker-compose-plugin "
            f"package there and run again."
        )
    # A private folder of the login's (mktemp -d: 0700, unpredictable name), never a guessable /tmp path.
    folder = shell.execute("mktemp -d /tmp/incarnate-XXXXXXXXXX", what="making a private upload folder").strip()
    upload = f"{folder}/docker-compose"
    try:
        shell.put_file(bundled, upload)
        shell.execute(
            shell.as_root(f"install -D -m 0755 {shlex.quote(upload)} {COMPOSE_PLUGIN}"),
            what=f"installing Compose into {COMPOSE_PLUGIN}",
        )
    finally:
        shell.execute(f"rm -rf {shlex.quote(folder)}", what="removing the upload folder", check=False)
    version = compose_version(shell)
    if not version:
        raise HostError(
            f"Compose copied to {COMPOSE_PLUGIN} on host {shell.name} does not run; install the "
            f"docker-compose-plugin package there and run again."
        )
    return f"Compose {version} installed as {COMPOSE_PLUGIN}"


def ensure_directories(shell: Shell, directories: list[str]) -> str | None:
    if not directories:
        return None
    quoted = " ".join(shlex.quote(path) for path in directories)
    created = shell.execute(
        shell.as_root(f'for d in {quoted}; do [ -d "$d" ] || {{ mkdir -p "$d" && echo "$d"; }}; done'),
        what="creating directories",
    ).split()
    return f"directories {', '.join(directories)}: " + (f"created {', '.join(created)}" if created else "present")


def with_managed_line(text: str, marker: str, line: str | None) -> str:
    """`text` with the one line ending in `marker` replaced by `line` (or removed when None); other lines untouched."""
    kept = [existing for existing in text.splitlines() if not existing.rstrip().endswith(marker)]
    if line:
        kept.append(f"{line} {marker}")
    return "\n".join(kept) + "\n"


def update_file(shell: Shell, path: str, marker: str, line: str | None) -> bool:
    """Put the managed line into a system file: the new text goes to a temporary file beside it, which is renamed
    into place (a reader sees the old file or the new one). The first change keeps the original as
    PATH.incarnate-backup, and no later change overwrites that copy. A file that cannot be renamed over (a bind
    mount, as /etc/hosts is in a container) is rewritten in place instead."""
    quoted, backup, new = (
        shlex.quote(path),
        shlex.quote(f"{path}.incarnate-backup"),
        shlex.quote(f"{path}.incarnate-new"),
    )
    text = shell.execute(f"cat {quoted}", what=f"reading {path}")
    wanted = with_managed_line(text, marker, line)
    if wanted == text:
        return False
    script = (
        f"[ -e {backup} ] || cp -p {quoted} {backup}; "
        f"cat > {new} && chmod --reference={quoted} {new} && chown --reference={quoted} {new} && "
        f"{{ mv -f {new} {quoted} 2>/dev/null || {{ cat {new} > {quoted} && rm -f {new}; }}; }}"
    )
    shell.execute(shell.as_root(script), what="writing " + path, stdin=wanted.encode())
    return True


def ensure_dns_names(shell: Shell, stack: str, names: list[str]) -> str | None:
    changed = update_file(
        shell, "/etc/hosts", f"# incarnate:{stack}", f"127.0.0.1 {' '.join(names)}" if names else None
    )
    if not names:
        return "DNS names removed from /etc/hosts" if changed else None
    return f"DNS names {', '.join(names)} {'added to' if changed else 'present in'} /etc/hosts"


def ensure_backup_share(shell: Shell, stack: str, share: NfsShare | SmbShare | None) -> str | None:
    if isinstance(share, NfsShare):
        return mount_nfs(shell, stack, share)
    if isinstance(share, SmbShare):
        return reach_smb(shell, share)
    return None


def mount_nfs(shell: Shell, stack: str, share: NfsShare) -> str:
    """The export in /etc/fstab (nofail: a NAS that is down must not stop the host from booting), mounted."""
    if not shell.execute("command -v mount.nfs || true", what="looking for mount.nfs").strip():
        shell.execute(shell.as_root(APT_INSTALL + " nfs-common"), what="installing nfs-common")
    quoted = shlex.quote(share.mount)
    shell.execute(shell.as_root("mkdir -p " + quoted), what="creating " + share.mount)
    update_file(
        shell, "/etc/fstab", f"# incarnate:{stack}", f"{share.source} {share.mount} nfs defaults,_netdev,nofail 0 0"
    )
    mounting = f"mounting NFS share {share.source} on {share.mount}"
    shell.execute(shell.as_root(f"mountpoint -q {shlex.quote(share.mount)} || mount {quoted}"), what=mounting)
    return f"NFS share {share.source} mounted on {share.mount}"


def reach_smb(shell: Shell, share: SmbShare) -> str:
    """The SMB store is written over the network; the host (and a worker on it) must reach the server."""
    # server and port are bash's arguments, never part of its script
    probe = f"timeout 5 bash -c 'exec 3<>\"/dev/tcp/$1/$2\"' probe {shlex.quote(share.server)} {int(share.port)}"
    try:
        shell.execute(probe, what="reaching the SMB server")
    except HostError:
        raise HostError(
            f"host {shell.name} cannot reach SMB server {share.server}:{share.port} (backup share "
            f"//{share.server}/{share.share}); open the route or firewall and run again."
        ) from None
    return f"SMB server {share.server}:{share.port} (//{share.server}/{share.share}) reachable"
