"""Publishing a release: the vendor's folder (release.yaml, compose.yaml) is checked, its images are found in the
registry, its vanilla backup is made by running it, and all of it is written create-only into the release store.

Plain functions the publish-release flow calls; each refusal is a ReleaseError (bad input, exit 2) raised
before anything is written.
"""

import hashlib
import json
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml
from pydantic import SecretStr

from incarnate import __version__, datasources, product_settings
from incarnate.compose import ComposeProject
from incarnate.config import PUBLISH_PREFIX, BackupSettings, StackConfig
from incarnate.datasources.database import Database
from incarnate.errors import ReleaseError
from incarnate.host import Host
from incarnate.pinned import PinnedStack
from incarnate.policy import Finding, model_findings, refuse_unallowed, unused_exceptions, written_findings
from incarnate.registry import Registry, check_images
from incarnate.releases import (
    IMAGE_DIGEST,
    RELEASE_FILES,
    Publication,
    ReleaseDescriptor,
    ReleaseStore,
    file_digests,
    parse_descriptor,
)
from incarnate.repo import CustomerConfig
from incarnate.secrets import for_scratch

# compose.yaml is checked with this in ${HTTP_PORT}, so the service that publishes it can be found.
PROBE_PORT = "18080"
# A service that takes longer to stop on SIGTERM than this makes every update and backup stop wait for it.
SLOW_STOP_SECONDS = 5.0
SECRET_LOOKING = re.compile(
    r"\$\{([A-Za-z_][A-Za-z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|_KEY|APIKEY)[A-Za-z0-9_]*):?-", re.IGNORECASE
)


@dataclass(frozen=True)
class ReleaseFolder:
    """A release as its vendor's CI has it: a folder with release.yaml and compose.yaml."""

    path: Path
    descriptor: ReleaseDescriptor
    files: dict[str, bytes]

    @property
    def name(self) -> str:
        return f"{self.descriptor.product} {self.descriptor.release}"


def read_release_folder(path: Path) -> ReleaseFolder:
    if not path.is_dir():
        raise ReleaseError(f"release folder {path} does not exist.")
    missing = [name for name in RELEASE_FILES if not (path / name).is_file()]
    if missing:
        raise ReleaseError(
            f"release folder {path} has no {' and no '.join(missing)}; a release is release.yaml and compose.yaml."
        )
    files = {name: (path / name).read_bytes() for name in RELEASE_FILES}
    return ReleaseFolder(
        path, parse_descriptor(files["release.yaml"].decode(errors="replace"), str(path / "release.yaml")), files
    )


def written_compose(folder: ReleaseFolder) -> dict:
    written = yaml.safe_load(folder.files["compose.yaml"])
    return written if isinstance(written, dict) else {}


def policy_checked_model(
    folder: ReleaseFolder, host: Host, registry: str, where: str, outcome: str
) -> tuple[dict, list[Finding]]:
    """compose.yaml as Compose itself reads it at deployment (same variables, same command), as JSON, and what it
    asks of the host beyond its stack, each allowed by release.yaml; refused (ReleaseError ending with `outcome`)
    otherwise. Files Compose would read from the host are checked before Compose reads them."""
    allowed = folder.descriptor.allowed
    with tempfile.TemporaryDirectory(prefix="incarnate-check-") as scratch:
        found = written_findings(written_compose(folder), scratch)
        refuse_unallowed(found, allowed, where, outcome)
        project = ComposeProject(host=host, name="incarnate-check", workdir=Path(scratch))
        project.write_files(folder.files["compose.yaml"], scratch_variables(folder.descriptor, registry, PROBE_PORT))
        text = project.compose(
            "config",
            "--format",
            "json",
            what=f"checking {where} with `docker compose config`",
            error=ReleaseError,
        )
        model = json.loads(text)
        found += model_findings(model, scratch)
    refuse_unallowed(found, allowed, where, outcome)
    return model, found


def compose_problems(
    descriptor: ReleaseDescriptor, model: dict, registry: str, written: dict | None = None
) -> list[str]:
    """What compose.yaml (`model`: as Compose reads it, variables filled in; `written`: as its author wrote it) and
    release.yaml disagree on; empty when they describe the same release."""
    services: dict[str, dict] = model.get("services") or {}
    return [
        *service_problems(
            descriptor, services, registry, (model if written is None else written).get("services") or {}
        ),
        *profile_problems(descriptor, services),
        *volume_problems(descriptor, services, model.get("volumes") or {}),
        *port_problems(descriptor, services),
    ]


def service_problems(
    descriptor: ReleaseDescriptor, services: dict[str, dict], registry: str, written: dict[str, dict]
) -> list[str]:
    """The same services on both sides, each running the image release.yaml names. A wrong image is shown as the
    file spells it: its variables' names, never a value filled in (an error reaches the run log and alerts)."""
    problems = [
        f"service {name} is in compose.yaml but not under images in release.yaml"
        for name in services
        if name not in descriptor.images
    ]
    problems += [
        f"service {name} is under images in release.yaml but not in compose.yaml"
        for name in descriptor.images
        if name not in services
    ]
    for name, image in descriptor.images.items():
        runs = services.get(name, {}).get("image")
        if name in services and runs != f"{registry}/{image}":
            own = written.get(name)
            spelled = own.get("image", "no image") if isinstance(own, dict) else "an image"
            problems.append(f"service {name} runs image {spelled!r}, release.yaml says ${{INCARNATE_REGISTRY}}/{image}")
    return problems


def profile_problems(descriptor: ReleaseDescriptor, services: dict[str, dict]) -> list[str]:
    """An optional service has exactly its own name as its profile, every other service none."""
    problems = []
    for name, service in services.items():
        wanted = [name] if name in descriptor.optional_services else []
        if (service.get("profiles") or []) != wanted:
            problems.append(
                f"service {name} has profiles {service.get('profiles') or []}, expected {wanted} (an optional "
                f"service has exactly its own name as profile, any other none)"
            )
    return problems


def volume_problems(descriptor: ReleaseDescriptor, services: dict[str, dict], volumes: dict) -> list[str]:
    """Every volume of a service is backed up, covered by a database dump, or declared ephemeral; an optional
    service's backed-up volumes name it."""
    declared = {spec.name: spec.service for spec in descriptor.volumes}
    known = set(declared) | set(descriptor.ephemeral_volumes)
    problems = [
        f"volume {name} is in release.yaml but not under volumes in compose.yaml"
        for name in sorted(known)
        if name not in volumes
    ]
    dumped = {spec.service for spec in descriptor.databases}  # a database's own volumes are covered by its dump
    for name, service in services.items():
        for volume in (mount.get("source") for mount in service.get("volumes") or [] if mount.get("type") == "volume"):
            if volume and volume not in known and name not in dumped:
                problems.append(
                    f"service {name} mounts volume {volume}, which release.yaml neither backs up (volumes) "
                    f"nor lets go (ephemeral_volumes)"
                )
            if name in descriptor.optional_services and volume in declared and declared[volume] != name:
                problems.append(
                    f"volume {volume} of optional service {name} needs `service: {name}` in release.yaml, "
                    f"so it is backed up only while {name} is activated"
                )
    return problems


def port_problems(descriptor: ReleaseDescriptor, services: dict[str, dict]) -> list[str]:
    """A health path is asked on ${HTTP_PORT}: some service must publish it."""
    if not descriptor.health.path:
        return []
    published = [
        name
        for name, service in services.items()
        if any(str(port.get("published")) == PROBE_PORT for port in service.get("ports") or [])
    ]
    return (
        []
        if published
        else [f"release.yaml asks {descriptor.health.path} on ${{HTTP_PORT}}, but no service publishes ${{HTTP_PORT}}"]
    )


def check_compose(folder: ReleaseFolder, host: Host, registry: str) -> list[str]:
    """compose.yaml against release.yaml and the compose policy; the exceptions to the policy it uses, shown."""
    model, found = policy_checked_model(
        folder, host, registry, str(folder.path / "compose.yaml"), "Nothing was published."
    )
    problems = [
        *compose_problems(folder.descriptor, model, registry, written_compose(folder)),
        *unused_exceptions(found, folder.descriptor.allowed),
    ]
    if problems:
        raise ReleaseError(f"release folder {folder.path}: {'; '.join(problems)}. Nothing was published.")
    return [exception.describe() for exception in folder.descriptor.allow]


def check_policy(releases: ReleaseStore, descriptor: ReleaseDescriptor, registry: str) -> None:
    """A published release, before it is deployed: held to the compose policy as it is now (it may have been
    published before a rule existed), on this machine, before anything changes."""
    product, release = descriptor.product, descriptor.release
    try:
        files = releases.files(product, release)
    except ReleaseError as error:
        raise ReleaseError(f"{error} Nothing was changed.") from None
    folder = ReleaseFolder(Path(product) / release, descriptor, files)
    policy_checked_model(
        folder,
        Host(),
        registry,
        f"release store {releases.location}: {product}/{release}/compose.yaml",
        "Nothing was changed.",
    )


def shared_secret_warnings(folder: ReleaseFolder) -> list[str]:
    """Variables that look like passwords but have a default in compose.yaml: every customer would share it."""
    text = folder.files["compose.yaml"].decode(errors="replace")
    return [
        f"compose.yaml gives ${{{name}}} a default (`${{{name}:-...}}`): every customer would share that value; "
        f"declare it under secrets: in release.yaml (generated per stack) and write ${{{name}:?...}}"
        for name in sorted({match.group(1) for match in SECRET_LOOKING.finditer(text)})
    ]


def slow_stop_warnings(project: ComposeProject, descriptor: ReleaseDescriptor) -> list[str]:
    """Each service stopped as an update stops it (SIGTERM, SIGKILL after 10 s), the app first, timed: a service that
    does not end on SIGTERM soon makes every update and backup stop wait for it."""
    warnings = []
    for service in [*descriptor.app_services, *descriptor.data_services]:
        began = time.monotonic()
        project.compose("stop", "--timeout", "10", service, what=f"stopping service {service} of {project.name}")
        seconds = time.monotonic() - began
        if seconds > SLOW_STOP_SECONDS:
            warnings.append(
                f"service {service} took {seconds:.0f} s to stop on SIGTERM (more than {SLOW_STOP_SECONDS:.0f} s): "
                f"every update pays it; run it under an init that forwards the signal (tini, or `init: true`) or "
                f"make it exit on SIGTERM"
            )
    return warnings


def image_digests(folder: ReleaseFolder, registry: Registry) -> dict[str, str]:
    """repository:tag -> the registry's digest for every image; refused when one is missing or the registry gives no
    digest to pin it by."""
    digests = check_images(
        registry, sorted(set(folder.descriptor.images.values())), folder.name, "Nothing was published."
    )
    undigested = [image for image, digest in digests.items() if not IMAGE_DIGEST.fullmatch(digest)]
    if undigested:
        raise ReleaseError(
            f"registry {registry.address} gives no SHA-256 digest for {', '.join(undigested)}, so customers could "
            f"not run it pinned; use a registry that speaks the Docker/OCI distribution API. Nothing was published."
        )
    return digests


def content_digest(folder: ReleaseFolder, digests: dict[str, str]) -> str:
    """What identifies a release's content: its files and its images' digests."""
    hasher = hashlib.sha256()
    for name, digest in [*file_digests(folder.files).items(), *sorted(digests.items())]:
        hasher.update(f"{name}={digest}\n".encode())
    return hasher.hexdigest()


def differences(releases: ReleaseStore, folder: ReleaseFolder, digests: dict[str, str]) -> list[str]:
    """How the folder differs from what the store holds of the same release (files, image digests)."""
    product, release = folder.descriptor.product, folder.descriptor.release
    found = [
        f"{name} differs"
        for name, data in releases.present_files(product, release).items()
        if data != folder.files[name]
    ]
    published = releases.publication(product, release)
    if published:
        found += [
            f"image {image} is {digest} in the registry now, {published.images.get(image, 'absent')} when published"
            for image, digest in digests.items()
            if published.images.get(image) != digest
        ]
    return found


def refuse_changed(releases: ReleaseStore, folder: ReleaseFolder, digests: dict[str, str]) -> Publication | None:
    """The release's publication when the store has it with this very content; None when it is not published;
    ReleaseError naming what differs when the store holds other content under the same release."""
    found = differences(releases, folder, digests)
    if found:
        raise ReleaseError(
            f"release store {releases.location}: {folder.name} is published with other content ({'; '.join(found)}); "
            f"a published release never changes: give the new content a new release number. Nothing was published."
        )
    return releases.publication(folder.descriptor.product, folder.descriptor.release)


def scratch_variables(descriptor: ReleaseDescriptor, registry: str, http_port: str) -> dict[str, str]:
    """What compose.yaml reads while the release is checked or runs in its scratch stack: secrets nobody keeps."""
    return {
        "INCARNATE_REGISTRY": registry,
        "HTTP_PORT": http_port,
        "COMPOSE_PROFILES": ",".join(descriptor.optional_services),
        **product_settings.for_publishing(descriptor.settings, int(http_port)),
        **{product_settings.variable(name): "" for name in product_settings.secret_names(descriptor.settings)},
        **{name: value.get_secret_value() for name, value in for_scratch(descriptor.secrets).items()},
    }


def scratch_name(descriptor: ReleaseDescriptor) -> str:
    """The Compose project the release runs in while its vanilla backup is made."""
    return f"{PUBLISH_PREFIX}{descriptor.product}-{descriptor.release.replace('.', '-')}"


def proof_name(descriptor: ReleaseDescriptor) -> str:
    """The Compose project the vanilla backup is restored into before the release is published."""
    return f"{scratch_name(descriptor)}-proof"


def proof_stack(folder: ReleaseFolder, registry: str, digests: dict[str, str], http_port: int) -> PinnedStack:
    """The stack a vanilla backup is proven on: a new customer's, as load config would make it, with the release's
    example settings and no repo."""
    descriptor = folder.descriptor
    config = StackConfig(  # every optional service activated, as in the scratch stack the vanilla was made in
        stack="proof", product=descriptor.product, release=descriptor.release, services=descriptor.optional_services
    ).model_copy(
        update={"stack": proof_name(descriptor), "http_port": http_port}  # a reserved name: no stack.yaml may use it
    )
    return PinnedStack(
        customer=CustomerConfig(repo=str(folder.path), ref="", commit="", config=config),
        release=descriptor,
        registry=registry,
        digests=digests,
        size=descriptor.default_size,
        settings=product_settings.for_publishing(descriptor.settings, http_port),
    )


def proof_secrets(descriptor: ReleaseDescriptor) -> dict[str, SecretStr]:
    """A new customer's secrets: fresh, unlike the ones the vanilla backup was made with; secret settings empty."""
    unset = {
        product_settings.variable(name): SecretStr("") for name in product_settings.secret_names(descriptor.settings)
    }
    return for_scratch(descriptor.secrets) | unset


def publication(folder: ReleaseFolder, digests: dict[str, str], vanilla: str, vanilla_bytes: int) -> Publication:
    descriptor = folder.descriptor
    return Publication(
        product=descriptor.product,
        release=descriptor.release,
        schema_version=descriptor.schema_version,
        files=file_digests(folder.files),
        images=digests,
        vanilla=vanilla,
        vanilla_bytes=vanilla_bytes,
        published_at=datetime.now(UTC).isoformat(timespec="seconds"),
        tool_version=__version__,
    )


def recovery_point(project: ComposeProject, release: ReleaseDescriptor) -> str:
    """What a customer's recovery of this release brings back, as its databases allow: every write (their logs are
    archived continuously), or only the last backup (and why); for a stack with the default backup settings."""
    sources = datasources.for_release(project, release, BackupSettings().base)
    databases = [source for source in sources if isinstance(source, Database)]
    why_not = [f"{source.artifact}: {reason}" for source in databases if (reason := source.archiving())]
    if not databases:
        return "recovery point: last backup (no database; files are backed up nightly)"
    if why_not:
        return f"recovery point: last backup ({'; '.join(why_not)})"
    return "recovery point: seconds before a loss (every database's log is archived as it is written)"
