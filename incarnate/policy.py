"""What a release's compose file may ask of a host: nothing beyond its own stack, unless release.yaml names the
exception with a reason. Checked when a release is published and again before every deployment (a release published
before a rule existed is held to it too), on compose.yaml as its author wrote it (files Compose would read from the
host) and as Compose reads it (everything else, variables filled in)."""

import os
import re
from dataclasses import dataclass

from incarnate.errors import ReleaseError

RULES = {
    "privileged": "runs privileged",
    "capabilities": "adds capabilities beyond Docker's default",
    "devices": "gets host devices",
    "host_mounts": "mounts a host path outside the stack's folder",
    "docker_socket": "mounts the Docker socket (root on the host)",
    "host_namespaces": "shares a namespace with the host",
    "env_file": "reads an env_file outside the stack's folder",
    "build": "builds its image on the host (`build:`)",
    "security_opt": "turns confinement off (security_opt)",
}
# What `docker run` grants without cap_add (moby's oci/caps/defaults.go).
DEFAULT_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "NET_RAW",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/var/run/docker", "/run/docker", "/run/containerd")
NAMESPACES = ("network_mode", "pid", "ipc", "uts", "userns_mode", "cgroup")
UNCONFINED = re.compile(r"(seccomp|apparmor|systempaths)[:=]unconfined|label[:=]disable", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    service: str
    rule: str
    detail: str

    def describe(self) -> str:
        who = f"service {self.service}" if self.service else "the file"  # `include` is no service's: never allowed
        return f"{who} {RULES[self.rule]} ({self.detail}; rule {self.rule})"


def _inside(path: str, folder: str) -> bool:
    resolved = os.path.normpath(os.path.join(folder, path))
    return resolved == folder or resolved.startswith(folder.rstrip("/") + "/")


def _paths(entries: object, key: str) -> list[str]:
    """The file paths of a compose key that takes a path, a list of paths, or mappings holding them under `key`
    (where the path may be a list again: `include: [{path: [a, b]}]`)."""
    if isinstance(entries, dict):
        return _paths(entries.get(key), key)
    if isinstance(entries, list):
        return [path for entry in entries for path in _paths(entry, key)]
    return [str(entries)] if entries else []


def written_findings(written: dict, folder: str) -> list[Finding]:
    """What compose.yaml as written makes Compose read from the host before anything else can be checked: an env_file,
    `include` or `extends` file outside the stack's folder (Compose reads them while it loads the file, puts an env
    file's content into containers, and may quote a line of any of them in an error)."""
    findings = [
        Finding("", "host_mounts", f"include {path}")
        for path in _paths(written.get("include"), "path")
        if "$" in path or not _inside(path, folder)
    ]
    for name, service in (written.get("services") or {}).items():
        if not isinstance(service, dict):
            continue
        extends = service.get("extends") if isinstance(service.get("extends"), dict) else {}
        findings += [
            Finding(str(name), "host_mounts", f"extends file {path}")
            for path in _paths(extends.get("file"), "file")
            if "$" in path or not _inside(path, folder)
        ]
        findings += [
            Finding(str(name), "env_file", f"env_file {path}")
            for path in _paths(service.get("env_file"), "path")
            if "$" in path or not _inside(path, folder)
        ]
    return findings


def model_findings(model: dict, folder: str) -> list[Finding]:
    """What compose.yaml, as Compose reads it (`docker compose config --format json`, run with `folder` as the
    project directory), asks of the host beyond its stack."""
    host_volumes = {
        name: spec["driver_opts"]["device"]
        for name, spec in (model.get("volumes") or {}).items()
        if isinstance((spec or {}).get("driver_opts"), dict) and "device" in spec["driver_opts"]
    }
    host_files = {
        f"{kind}:{name}": spec["file"]
        for kind in ("secrets", "configs")
        for name, spec in (model.get(kind) or {}).items()
        if isinstance(spec, dict) and spec.get("file")
    }
    findings = []
    for name, service in (model.get("services") or {}).items():
        findings += _service_findings(name, service, folder, host_volumes, host_files)
    return findings


def _service_findings(
    name: str, service: dict, folder: str, host_volumes: dict[str, str], host_files: dict[str, str]
) -> list[Finding]:
    found = []
    if service.get("privileged"):
        found.append(Finding(name, "privileged", "privileged: true"))
    added = sorted({cap.upper().removeprefix("CAP_") for cap in service.get("cap_add") or []} - DEFAULT_CAPABILITIES)
    if added:
        found.append(Finding(name, "capabilities", f"cap_add {', '.join(added)}"))
    for device in service.get("devices") or []:
        source = device.get("source", "?") if isinstance(device, dict) else str(device).split(":", 1)[0]
        found.append(Finding(name, "devices", f"device {source}"))
    for mount in service.get("volumes") or []:
        source = mount.get("source") or ""
        if mount.get("type") == "bind":
            found += _mount_finding(name, source, folder)
        elif mount.get("type") == "volume" and source in host_volumes:
            found += _mount_finding(name, host_volumes[source], folder, f"volume {source} of ")
    for kind in ("secrets", "configs"):
        for entry in service.get(kind) or []:
            source = f"{kind}:{entry.get('source') if isinstance(entry, dict) else entry}"
            if source in host_files:
                found += _mount_finding(name, host_files[source], folder, f"{kind.removesuffix('s')} of ")
    for key in NAMESPACES:
        if str(service.get(key) or "") == "host":
            found.append(Finding(name, "host_namespaces", f"{key}: host"))
    if service.get("build"):
        found.append(Finding(name, "build", "build:"))
    found += [
        Finding(name, "security_opt", f"security_opt {option}")
        for option in service.get("security_opt") or []
        if UNCONFINED.fullmatch(str(option).strip())
    ]
    return found


def _mount_finding(service: str, source: str, folder: str, via: str = "") -> list[Finding]:
    path = os.path.normpath(source)
    if any(
        path in ("/", socket) or path.startswith(socket + "/") or socket.startswith(path + "/")
        for socket in DOCKER_SOCKETS
    ):
        return [Finding(service, "docker_socket", f"{via}host path {source}")]
    return [] if _inside(source, folder) else [Finding(service, "host_mounts", f"{via}host path {source}")]


def refuse_unallowed(findings: list[Finding], allowed: dict[tuple[str, str], str], where: str, outcome: str) -> None:
    """ReleaseError naming every finding release.yaml does not allow (service and rule) with its reason."""
    refused = [finding for finding in findings if (finding.service, finding.rule) not in allowed]
    if refused:
        raise ReleaseError(
            f"{where}: {'; '.join(finding.describe() for finding in refused)}. A release runs only its own stack: "
            f"remove it, or name the exception in release.yaml (allow: - service: S, rule: R, reason: why). {outcome}"
        )


def unused_exceptions(findings: list[Finding], allowed: dict[tuple[str, str], str]) -> list[str]:
    """Exceptions release.yaml names that compose.yaml does not need: a stale one would hide a later change."""
    needed = {(finding.service, finding.rule) for finding in findings}
    return [
        f"service {service} needs no exception for rule {rule}"
        for service, rule in allowed
        if (service, rule) not in needed
    ]
