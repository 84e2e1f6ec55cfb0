"""Releases: the descriptor a release ships (release.yaml), the release store that keeps them."""

import hashlib
import re
from datetime import datetime
from typing import Literal, TypeVar

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from incarnate.backup_format import MANIFEST, Snapshot, artifact_name, read_manifest
from incarnate.config import NAME_PATTERN, Strict, describe_validation_error, load_mapping, parse_version
from incarnate.datasources import ENGINES
from incarnate.errors import ConfigError, IntegrityError, ObjectMissing, ReleaseError
from incarnate.hooks import Hook, Point
from incarnate.policy import RULES
from incarnate.product_settings import SettingSpec, check_names
from incarnate.product_settings import variable as setting_variable
from incarnate.stores import Store

RELEASE_FILES = ("release.yaml", "compose.yaml")
PUBLICATION = "publication.json"
WITHDRAWN = "withdrawn.json"  # written once beside publication.json: no new stack starts on the release
SECRET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
RecordT = TypeVar("RecordT", bound=Strict)
IMAGE_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class DatabaseSpec(Strict):
    """A database inside a service, dumped and loaded with its engine's own tools."""

    name: str = Field(description="The database's name inside the service.")
    service: str = Field(description="The Compose service that runs the database server.")
    engine: str = Field(description="A database engine incarnate knows (incarnate/datasources/).")

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value not in ENGINES:
            raise ValueError(f"expected one of the database engines {', '.join(sorted(ENGINES))}, got {value!r}")
        return value


class VolumeSpec(Strict):
    """A Compose volume backed up as a tar archive (files, uploads, configuration the app writes)."""

    name: str = Field(description="Compose volume name, as in compose.yaml.")
    service: str | None = Field(
        default=None,
        description="The service it belongs to: needed for an optional service's "
        "volumes, which are backed up only while it is activated.",
    )


class PolicyException(Strict):
    """One thing a service may ask of the host beyond its stack (docs/product.md: Compose policy), and why."""

    service: str = Field(description="The service that needs it.")
    rule: Literal[tuple(RULES)] = Field(description="The rule it is an exception to (docs/product.md).")
    reason: str = Field(
        min_length=10, description="Why the release needs it: shown by publish, release list and status."
    )

    def describe(self) -> str:
        return f"{self.service} {self.rule}: {self.reason}"


class ServiceSize(Strict):
    """What one size gives one service: Compose's `cpus` and `mem_limit`, and environment values."""

    cpus: float | None = Field(default=None, gt=0)
    memory: str | None = Field(default=None, pattern=r"^[1-9][0-9]*[kmg]?$", description="e.g. 512m, 2g")
    environment: dict[str, str] = {}

    def compose(self) -> dict:
        limits = {"cpus": self.cpus, "mem_limit": self.memory}
        return {
            **{key: value for key, value in limits.items() if value is not None},
            **({"environment": self.environment} if self.environment else {}),
        }


class HealthSpec(Strict):
    """How incarnate knows the release is up: Compose's healthchecks always, and the app's HTTP answer when `path`
    is set."""

    service: str = Field(description="The service that publishes ${HTTP_PORT}.")
    path: str | None = Field(
        default="/health", description="HTTP path asked on ${HTTP_PORT}; null: Compose healthchecks alone."
    )
    answer: Literal["release", "status"] = Field(
        default="release", description="release: JSON with `release` and `schema_version`; status: any 2xx answer."
    )

    @model_validator(mode="after")
    def _path_for_a_release_answer(self) -> "HealthSpec":
        if self.answer == "release" and not self.path:
            raise ValueError(
                "health.answer `release` needs health.path (the app reports its release there); "
                "set answer: status to rely on Compose healthchecks alone"
            )
        if self.path is not None and not self.path.startswith("/"):
            raise ValueError(f"health.path must start with /, got {self.path!r}")
        return self


class SchemaCheck(Strict):
    """A command run in a service that prints the schema version the data is at (for apps whose health does not say)."""

    service: str = Field(description="The service the command runs in.")
    command: list[str] = Field(
        min_length=1,
        description='Argument list, run with `docker compose exec`; no shell (use [sh, -c, "..."] if you need one).',
    )


class ReleaseDescriptor(Strict):
    """release.yaml: what incarnate must know to restore, start, check and back up a release."""

    product: str = Field(
        description="Product name: lowercase letters, digits, dashes; what stack.yaml's `product` names."
    )
    release: str = Field(description="MAJOR.MINOR.PATCH; what stack.yaml's `release` pins.")
    schema_version: int = Field(
        ge=0,
        description="The schema the release's data is at once its migrations ran; a "
        "release never runs on data of a newer schema.",
    )
    images: dict[str, str] = Field(
        min_length=1,
        description="Every service -> repository:tag in the registry (the tag pinned per release, never latest).",
    )
    data_services: list[str] = Field(
        description="Services that hold data (databases): started first on restore, left "
        "running when the app stops for a backup."
    )
    databases: list[DatabaseSpec] = Field(default=[], description="Databases dumped and loaded with their engine.")
    volumes: list[VolumeSpec] = Field(default=[], description="Compose volumes backed up as tar archives.")
    ephemeral_volumes: list[str] = Field(
        default=[],
        description="Volumes whose content may be lost (caches): not backed "
        "up. Every other volume of a non-database service must "
        "be under `volumes`.",
    )
    health: HealthSpec = Field(description="How incarnate knows the release is up.")
    schema_check: SchemaCheck | None = Field(
        default=None, description="A command that prints the schema version, for apps whose health answer does not say."
    )
    secrets: list[str] = Field(
        default=[],
        description="Names of the stack secrets its services need: generated once per "
        "stack, compose.yaml reads each as ${NAME} in upper case.",
    )
    optional_services: list[str] = Field(
        default=[],
        description="Services a stack runs only when its stack.yaml activates them; each has `profiles: [<its name>]`.",
    )
    sizes: dict[str, dict[str, ServiceSize]] = Field(
        default={}, description="size name -> service -> limits and environment; the first is the default."
    )
    allow: list[PolicyException] = Field(
        default=[],
        description="Exceptions to incarnate's compose policy (privileged, host mounts, the Docker socket, ...), each "
        "for one service and rule with its reason; anything else the policy refuses.",
    )
    settings: dict[str, SettingSpec] = Field(
        default={},
        description="What each customer may choose in stack.yaml's `settings:` (name -> type, default, ...); "
        "compose.yaml reads each as ${NAME} in upper case. public_url is every stack's, declared or not.",
    )
    hooks: dict[Point, list[Hook]] = Field(
        default={},
        description="Commands run in a service at points of a stack's life: first_install, after_install, "
        "after_restore, after_update, before_backup, after_backup (docs/product.md: Lifecycle hooks).",
    )
    _dormant: frozenset[str] = PrivateAttr(default=frozenset())  # artifacts of services this view leaves out

    @field_validator("settings")
    @classmethod
    def _setting_names(cls, settings: dict[str, SettingSpec]) -> dict[str, SettingSpec]:
        check_names(settings)
        return settings

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, names: list[str]) -> list[str]:
        bad = [name for name in names if not SECRET_NAME.fullmatch(name)]
        if bad:
            raise ValueError(
                f"expected secret names of lowercase letters, digits and underscores, got {', '.join(map(repr, bad))}"
            )
        return names

    @field_validator("product")
    @classmethod
    def _product_name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(f"expected a lowercase name of letters, digits and dashes (at most 40), got {value!r}")
        return value

    @field_validator("release")
    @classmethod
    def _release_version(cls, value: str) -> str:
        parse_version(value)
        return value

    @model_validator(mode="after")
    def _services_known(self) -> "ReleaseDescriptor":
        named = [
            *(f"data_services {service}" for service in self.data_services),
            *(f"optional_services {service}" for service in self.optional_services),
            *(f"volumes {spec.name}: service {spec.service}" for spec in self.volumes if spec.service),
            *(f"sizes {size}: service {service}" for size, services in self.sizes.items() for service in services),
            *(f"databases {spec.name}: service {spec.service}" for spec in self.databases),
            f"health.service {self.health.service}",
            *([f"schema_check.service {self.schema_check.service}"] if self.schema_check else []),
            *(f"allow {exception.rule}: service {exception.service}" for exception in self.allow),
            *(f"hooks {point}: service {hook.service}" for point, hooks in self.hooks.items() for hook in hooks),
        ]
        clash = sorted({setting_variable(name) for name in self.settings} & {name.upper() for name in self.secrets})
        if clash:
            raise ValueError(f"{', '.join(clash)}: both a secret and a setting; give them different names")
        unknown = [where for where in named if where.rsplit(" ", 1)[-1] not in self.images]
        if unknown:
            raise ValueError(f"{'; '.join(unknown)}: not a service under images ({', '.join(self.images)})")
        return self

    @property
    def app_services(self) -> list[str]:
        """The services that are not data services: what is stopped so that nothing writes while data changes."""
        return [service for service in self.images if service not in self.data_services]

    @property
    def allowed(self) -> dict[tuple[str, str], str]:
        """(service, rule) -> reason, for every exception to the compose policy the release names."""
        return {(exception.service, exception.rule): exception.reason for exception in self.allow}

    def hooks_at(self, point: str) -> list[Hook]:
        """The hooks of `point` whose service this view of the release runs."""
        return [hook for hook in self.hooks.get(point, []) if hook.service in self.images]

    @property
    def hidden_variables(self) -> list[str]:
        """The compose variables whose values are secret: never shown in a hook's output."""
        return [name.upper() for name in self.secrets] + [
            setting_variable(name) for name, spec in self.settings.items() if spec.secret
        ]

    @property
    def default_size(self) -> str | None:
        return next(iter(self.sizes), None)

    def refuse_unknown(self, services: list[str], size: str | None, source: str) -> None:
        """stack.yaml may activate only the release's optional services and choose only a size it defines."""
        unknown = [service for service in services if service not in self.optional_services]
        if unknown:
            named = (
                f"service {unknown[0]} is not an optional service"
                if len(unknown) == 1
                else f"services {', '.join(unknown)} are not optional services"
            )
            raise ConfigError(
                f"{source}: {named} of {self.product} {self.release} (its optional services: "
                f"{', '.join(self.optional_services) or 'none'})."
            )
        if size is not None and size not in self.sizes:
            raise ConfigError(
                f"{source}: size {size} is not defined by {self.product} {self.release} (its sizes: "
                f"{', '.join(self.sizes) or 'none'})."
            )

    def activated(self, services: list[str]) -> "ReleaseDescriptor":
        """The release as a stack that activates `services` runs it: optional services it does not activate, and
        their databases and volumes, are left out (their data is neither backed up nor restored)."""
        inactive = set(self.optional_services) - set(services)
        databases = [spec for spec in self.databases if spec.service not in inactive]
        volumes = [spec for spec in self.volumes if spec.service not in inactive]
        view = self.model_copy(
            update={
                "images": {service: image for service, image in self.images.items() if service not in inactive},
                "data_services": [service for service in self.data_services if service not in inactive],
                "databases": databases,
                "volumes": volumes,
            }
        )
        view._dormant = frozenset(
            {artifact_name("database", spec.name) for spec in self.databases if spec not in databases}
            | {artifact_name("volume", spec.name) for spec in self.volumes if spec not in volumes}
        )
        return view

    @property
    def artifact_names(self) -> set[str]:
        """The artifacts a backup of this (activated) release holds: one per database and backed-up volume."""
        return {artifact_name("database", spec.name) for spec in self.databases} | {
            artifact_name("volume", spec.name) for spec in self.volumes
        }

    @property
    def dormant_artifacts(self) -> frozenset[str]:
        """Artifacts of optional services this view does not activate: kept where they are, never restored."""
        return self._dormant

    def size_overrides(self, size: str | None) -> dict:
        """A Compose file that gives each service its size's limits and environment; empty without a size."""
        chosen = self.sizes.get(size or "", {}) if self.sizes else {}
        return (
            {"services": {service: spec.compose() for service, spec in chosen.items() if service in self.images}}
            if chosen
            else {}
        )


def parse_descriptor(text: str, source: str) -> ReleaseDescriptor:
    try:
        return ReleaseDescriptor.model_validate(load_mapping(text, source, ReleaseError))
    except ValidationError as error:
        raise ReleaseError(describe_validation_error(source, error)) from None


class Publication(Strict):
    """publication.json, written last when a release is published: what was published, so that publishing the
    same release again can tell "already there" from "different content", and where its vanilla backup is."""

    product: str
    release: str
    schema_version: int
    files: dict[str, str] = Field(description="release file -> SHA-256 of its bytes")
    images: dict[str, str] = Field(description="repository:tag -> the registry's digest when it was published")
    vanilla: str = Field(description="prefix of the vanilla snapshot in the release store")
    vanilla_bytes: int
    published_at: str
    tool_version: str


class Withdrawal(Strict):
    """withdrawn.json: the vendor took a release back. No new stack starts on it and no stack is updated to it;
    stacks that run it are still backed up, re-deployed and recovered on it (their data was written by it)."""

    reason: str = Field(min_length=10)
    withdrawn_at: str
    tool_version: str


def published_digests(release: ReleaseDescriptor, publication: Publication) -> dict[str, str]:
    """repository:tag -> the digest the registry gave it at publication, for every image the release runs."""
    digests = {image: publication.images.get(image, "") for image in release.images.values()}
    unpinned = sorted(image for image, digest in digests.items() if not IMAGE_DIGEST.fullmatch(digest))
    if unpinned:
        raise ReleaseError(
            f"the publication record of {release.product} {release.release} has no image digest for "
            f"{', '.join(unpinned)}, so what it runs cannot be pinned; publish the release again from a registry that "
            f"gives digests. Nothing was changed."
        )
    return digests


def digest_overrides(release: ReleaseDescriptor, registry: str, digests: dict[str, str]) -> dict:
    """A Compose file that runs every service's image by its published digest: a tag moved in the registry since
    changes nothing a host runs."""
    return {
        "services": {
            service: {"image": f"{registry}/{image.rsplit(':', 1)[0]}@{digests[image]}"}
            for service, image in release.images.items()
        }
    }


def file_digests(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}


def version_order(release: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in release.split("."))


class ReleaseStore:
    """The write-once store of releases: <product>/<release>/{release.yaml, compose.yaml, vanilla-<digest>/,
    publication.json}, chunks shared by every vanilla backup. A customer store keeps copies of the files only."""

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
        found = {
            key.removeprefix(base).split("/")[0]
            for key in self.store.list(base.rstrip("/"))
            if key.count("/") == base.count("/") + 1 and key.endswith("/release.yaml")
        }
        return sorted(found, key=version_order)

    def read_file(self, product: str, release: str, name: str) -> bytes:
        try:
            return self.store.get(self._key(product, release, name))
        except ObjectMissing:
            known = ", ".join(self.releases(product)) or "none"
            raise ReleaseError(
                f"release store {self.location}: {product} {release} has no {name} "
                f"(releases there: {known}; `incarnate release publish DIR` publishes one)."
            ) from None

    def published(self, product: str, release: str) -> Publication:
        """The release's publication record: only a published release deploys (a folder copied in by hand has none)."""
        publication = self.publication(product, release)
        if publication is None or (publication.product, publication.release) != (product, release):
            raise ReleaseError(
                f"release store {self.location}: {product} {release} has "
                f"{'no publication record' if publication is None else 'the publication record of another release'}"
                f", so its files cannot be checked; only a release published with `incarnate release publish DIR` "
                f"deploys (a release folder copied in by hand does not). Nothing was changed."
            )
        return publication

    def checked_file(self, product: str, release: str, name: str) -> bytes:
        """A release file as it was published: its SHA-256 is the one its publication record holds."""
        data = self.read_file(product, release, name)
        published = self.published(product, release).files.get(name, "none")
        digest = hashlib.sha256(data).hexdigest()
        if digest != published:
            raise IntegrityError(
                f"release store {self.location}: {product}/{release}/{name} is not the file that was published "
                f"(SHA-256 {digest[:16]}, published {published[:16]}): it was changed or planted after publication; "
                f"refused, nothing was changed."
            )
        return data

    def descriptor(self, product: str, release: str) -> ReleaseDescriptor:
        text = self.checked_file(product, release, "release.yaml").decode()
        descriptor = parse_descriptor(text, f"{self.location}/{product}/{release}/release.yaml")
        if (descriptor.product, descriptor.release) != (product, release):
            raise ReleaseError(
                f"release store {self.location}: {product}/{release}/release.yaml describes "
                f"{descriptor.product} {descriptor.release}; the store is inconsistent."
            )
        return descriptor

    def files(self, product: str, release: str) -> dict[str, bytes]:
        """The release's files, each checked against its publication."""
        return {name: self.checked_file(product, release, name) for name in RELEASE_FILES}

    def present_files(self, product: str, release: str) -> dict[str, bytes]:
        """The release files that exist (an interrupted publication may have written some)."""
        return {
            name: self.store.get(self._key(product, release, name))
            for name in RELEASE_FILES
            if self.store.exists(self._key(product, release, name))
        }

    def add(
        self,
        product: str,
        release: str,
        files: dict[str, bytes],
        lock_until: datetime | None = None,
        lock_mode: str = "locked",
    ) -> None:
        """Copy a release's files in; present files are left as they are (releases are immutable)."""
        for name, data in files.items():
            key = self._key(product, release, name)
            self.store.put(key, data)
            if lock_until is not None:
                self.store.lock(key, lock_until, lock_mode)

    def vanilla_prefix(self, product: str, release: str, content: str) -> str:
        """Named by the content it was made from, so an interrupted publication's vanilla backup is found again."""
        return self._key(product, release, f"vanilla-{content[:16]}")

    def publication(self, product: str, release: str) -> Publication | None:
        return self._record(product, release, PUBLICATION, Publication, "publication record")

    def _record(self, product: str, release: str, name: str, model: type[RecordT], what: str) -> RecordT | None:
        """A release's JSON record, None when there is none; ReleaseError when it is not one."""
        try:
            return model.model_validate_json(self.store.get(self._key(product, release, name)))
        except ObjectMissing:
            return None
        except ValidationError:
            raise ReleaseError(
                f"release store {self.location}: {product}/{release}/{name} is not a {what}; the store is damaged."
            ) from None

    def record(self, publication: Publication, lock_until: datetime | None = None, lock_mode: str = "locked") -> None:
        self.add(
            publication.product,
            publication.release,
            {PUBLICATION: publication.model_dump_json(indent=1).encode()},
            lock_until,
            lock_mode,
        )

    def withdrawal(self, product: str, release: str) -> Withdrawal | None:
        return self._record(product, release, WITHDRAWN, Withdrawal, "withdrawal record")

    def withdraw(self, product: str, release: str, withdrawal: Withdrawal) -> Withdrawal:
        """Record the withdrawal of a published release, once (create-only); the record that is there."""
        self.published(product, release)
        found = self.withdrawal(product, release)
        if found is None:
            self.add(product, release, {WITHDRAWN: withdrawal.model_dump_json(indent=1).encode()})
        return found or withdrawal

    def refuse_withdrawn(self, product: str, release: str, what: str) -> None:
        """ReleaseError when the release was withdrawn: `what` (a new stack, an update) must not start on it."""
        withdrawal = self.withdrawal(product, release)
        if withdrawal:
            raise ReleaseError(
                f"{what}: release {product} {release} was withdrawn on {withdrawal.withdrawn_at} "
                f"({withdrawal.reason}); pin another release. Nothing was changed."
            )

    def publications(self, product: str | None = None) -> list[Publication]:
        """What is published, by product and release order."""
        keys = self.store.list(f"{self.prefix}{product}" if product else self.prefix.rstrip("/"))
        depth = self.prefix.count("/") + 2
        found = [key for key in keys if key.endswith(f"/{PUBLICATION}") and key.count("/") == depth]
        records = [self.publication(*key.removeprefix(self.prefix).split("/")[:2]) for key in found]
        return sorted(
            (record for record in records if record), key=lambda record: (record.product, version_order(record.release))
        )

    def snapshot_at(self, prefix: str) -> Snapshot | None:
        """The snapshot whose manifest is at `prefix`, None when there is none."""
        if not self.store.exists(f"{prefix}/{MANIFEST}"):
            return None
        return Snapshot(prefix=prefix, manifest=read_manifest(self.store, prefix))

    def vanilla(self, product: str, release: str) -> Snapshot:
        publication = self.publication(product, release)
        if publication is None:
            raise ReleaseError(
                f"release store {self.location}: {product} {release} is not published (no vanilla "
                f"backup); publish it with `incarnate release publish DIR`."
            )
        return Snapshot(prefix=publication.vanilla, manifest=read_manifest(self.store, publication.vanilla))


def customer_releases(store: Store) -> ReleaseStore:
    """A customer store keeps its own copy of every release it ran, so recovery needs no release store: the files
    and the publication record, which every read checks them against (sealed in an encrypted store: nobody without
    its key can plant or change the record)."""
    return ReleaseStore(store, prefix="releases")


def keep_checked_copy(
    source: ReleaseStore,
    copy: ReleaseStore,
    product: str,
    release: str,
    lock_until: datetime | None = None,
    lock_mode: str = "locked",
) -> None:
    """The customer store's copy of a release, checked against the publication in `source` (the release store): its
    files, then its publication record last, write-once until `lock_until` like the snapshots. Files already there
    (an earlier copy, or planted in advance) must be the published ones, and a record already there the source's."""
    publication = source.published(product, release)
    own = copy.publication(product, release)
    if own is not None and own.files != publication.files:
        raise IntegrityError(
            f"store {copy.location}: the publication record of {product} {release} differs from the release store's "
            f"({source.location}); remove {copy.location}/{product}/{release}/ from the store and run again. "
            f"Nothing was changed."
        )
    present = copy.present_files(product, release)
    for name, digest in file_digests(present).items():
        if digest != publication.files.get(name):
            raise IntegrityError(
                f"store {copy.location}: {product}/{release}/{name} is not the published file (changed, or planted "
                f"before the release was first deployed); remove {copy.location}/{product}/{release}/ from the "
                f"store and run again. Nothing was changed."
            )
    missing = {name: source.checked_file(product, release, name) for name in RELEASE_FILES if name not in present}
    copy.add(product, release, missing, lock_until, lock_mode)
    if own is None:
        copy.record(publication, lock_until, lock_mode)
