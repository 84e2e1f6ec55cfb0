"""Releases: the descriptor a release ships, the release store that keeps them, the registry check."""

import urllib.error
import urllib.request

import yaml
from pydantic import Field, ValidationError, field_validator

from incarnate import settings
from incarnate.backup_format import Snapshot, read_manifest
from incarnate.config import Strict, describe_validation_error
from incarnate.datasources import ENGINES
from incarnate.errors import ObjectMissing, ReleaseError, StoreError
from incarnate.stores import Store
from incarnate.stores.local import LocalStore

RELEASE_FILES = ("release.yaml", "compose.yaml")


class DatabaseSpec(Strict):
    name: str
    service: str
    engine: str = Field(description="A database engine incarnate knows (incarnate/datasources/).")

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value not in ENGINES:
            raise ValueError(f"expected one of the database engines {', '.join(sorted(ENGINES))}, got {value!r}")
        return value


class VolumeSpec(Strict):
    name: str = Field(description="Compose volume name, as in compose.yaml.")


class HealthSpec(Strict):
    service: str
    path: str = "/health"


class ReleaseDescriptor(Strict):
    """release.yaml: what incarnate must know to restore, start, check and back up a release."""

    product: str
    release: str
    schema_version: int = Field(ge=0)
    images: dict[str, str] = Field(description="service -> repository:tag in the registry")
    data_services: list[str]
    databases: list[DatabaseSpec] = []
    volumes: list[VolumeSpec] = []
    health: HealthSpec

    @property
    def app_services(self) -> list[str]:
        """The services that are not data services: what is stopped so that nothing writes while data changes."""
        return [service for service in self.images if service not in self.data_services]


def parse_descriptor(text: str, source: str) -> ReleaseDescriptor:
    try:
        return ReleaseDescriptor.model_validate(yaml.safe_load(text))
    except ValidationError as error:
        raise ReleaseError(describe_validation_error(source, error)) from None


class ReleaseStore:
    """The immutable store of releases: <product>/<release>/{release.yaml, compose.yaml, vanilla/}."""

    def __init__(self, store: Store, prefix: str = "") -> None:
        self.store = store
        self.prefix = f"{prefix}/" if prefix else ""  # a customer store keeps its copies under releases/

    @property
    def location(self) -> str:
        return f"{self.store.location}/{self.prefix}".rstrip("/")

    def _key(self, product: str, release: str, name: str) -> str:
        return f"{self.prefix}{product}/{release}/{name}"

    def releases(self, product: str) -> list[str]:
        base = f"{self.prefix}{product}/"
        found = {key.removeprefix(base).split("/")[0] for key in self.store.list(base.rstrip("/"))
                 if key.count("/") == base.count("/") + 1 and key.endswith("/release.yaml")}
        return sorted(found, key=lambda name: tuple(int(p) if p.isdigit() else 0 for p in name.split(".")))

    def has(self, product: str, release: str) -> bool:
        return all(self.store.exists(self._key(product, release, name)) for name in RELEASE_FILES)

    def read_file(self, product: str, release: str, name: str) -> bytes:
        try:
            return self.store.get(self._key(product, release, name))
        except ObjectMissing:
            known = ", ".join(self.releases(product)) or "none"
            raise ReleaseError(
                f"release store {self.location}: {product} {release} has no {name} "
                f"(releases there: {known})."
            ) from None

    def descriptor(self, product: str, release: str) -> ReleaseDescriptor:
        text = self.read_file(product, release, "release.yaml").decode()
        descriptor = parse_descriptor(text, f"{self.location}/{product}/{release}/release.yaml")
        if (descriptor.product, descriptor.release) != (product, release):
            raise ReleaseError(
                f"release store {self.location}: {product}/{release}/release.yaml describes "
                f"{descriptor.product} {descriptor.release}; the store is inconsistent."
            )
        return descriptor

    def files(self, product: str, release: str) -> dict[str, bytes]:
        return {name: self.read_file(product, release, name) for name in RELEASE_FILES}

    def add(self, product: str, release: str, files: dict[str, bytes]) -> None:
        """Copy a release's files in; present files are left as they are (releases are immutable)."""
        for name, data in files.items():
            self.store.put(self._key(product, release, name), data)

    def vanilla_prefix(self, product: str, release: str) -> str:
        return self._key(product, release, "vanilla")

    def vanilla(self, product: str, release: str) -> Snapshot:
        prefix = self.vanilla_prefix(product, release)
        if not self.store.exists(f"{prefix}/manifest.json"):
            raise ReleaseError(f"release store {self.location}: {product} {release} has no vanilla backup.")
        return Snapshot(prefix=prefix, manifest=read_manifest(self.store, prefix))


def default_release_store() -> ReleaseStore:
    """The release store this machine reads (INCARNATE_RELEASES)."""
    return ReleaseStore(LocalStore(settings.release_store_path()))


def customer_releases(store: Store) -> ReleaseStore:
    """A customer store keeps its own copy of every release it ran, so recovery needs no release store."""
    return ReleaseStore(store, prefix="releases")


def _registry_url(registry: str) -> str:
    host = registry.split(":", 1)[0]
    scheme = "http" if host in ("localhost", "127.0.0.1") else "https"
    return f"{scheme}://{registry}"


def image_present(registry: str, image: str, timeout: float = 10) -> bool:
    """Whether the registry has repository:tag (HEAD on the v2 manifest)."""
    repository, tag = image.rsplit(":", 1)
    request = urllib.request.Request(
        f"{_registry_url(registry)}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return True
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise StoreError(f"registry {registry}: asking for {image} answered HTTP {error.code}.") from None
    except OSError as error:
        raise StoreError(f"registry {registry} does not answer ({error}); is it running? (scripts/services.sh starts the local one).") from None


def check_images(registry: str, descriptor: ReleaseDescriptor) -> None:
    """Refuse a release whose images the registry lacks, before anything running is touched."""
    missing = [image for image in descriptor.images.values() if not image_present(registry, image)]
    if missing:
        raise ReleaseError(
            f"registry {registry} lacks {', '.join(missing)} for {descriptor.product} {descriptor.release}; "
            f"push the release's images first. Nothing was changed."
        )
