"""The customer repo's stack.yaml: a typed schema whose errors name file, field and expectation."""

import hashlib
import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from incarnate.errors import ConfigError

VERSION_PATTERN = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
PUBLISH_PREFIX, DRILL_SUFFIX = "publish-", "-drill"  # scratch stacks: `publish-<product>-<release>`, `<stack>-drill`


def parse_version(text: str) -> tuple[int, int, int]:
    """`1.10.2` -> (1, 10, 2); raises ValueError for anything that is not MAJOR.MINOR.PATCH."""
    match = VERSION_PATTERN.fullmatch(text)
    if not match:
        raise ValueError(f"expected a release version MAJOR.MINOR.PATCH such as 1.0.0, got {text!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


class Strict(BaseModel):
    """Every config model refuses keys it does not know: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalStoreTarget(Strict):
    """A directory on the machine that runs the flows (or a share mounted there)."""

    kind: Literal["local"] = "local"
    path: str = Field(description="Directory of the store; a mounted NFS path works the same.")


class BlockStoreTarget(Strict):
    """A saved store block: SMB, Azure Blob, or a local directory."""

    block: str = Field(description="Name of a saved backup-store block (Prefect UI: Blocks).")


class Retention(Strict):
    """Which snapshots pruning keeps: the newest of each of the last N days, weeks and months."""

    keep_daily: int = Field(default=7, ge=0, description="Keep the newest snapshot of each of the last N days.")
    keep_weekly: int = Field(default=4, ge=0, description="Keep the newest snapshot of each of the last N weeks.")
    keep_monthly: int = Field(default=6, ge=0, description="Keep the newest snapshot of each of the last N months.")
    min_age_days: int = Field(default=1, ge=0, description="Never prune a snapshot younger than this.")
    keep_incarnations: int = Field(
        default=10,
        ge=0,
        description="Keep the backups the last N incarnations list, so that `incarnate rollback` can go back to them.",
    )


CRON_FIELD = re.compile(r"^[0-9*/,A-Za-z-]+$")
CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))  # minute, hour, day of month, month, day of week
HASHED_FIELD = re.compile(r"^H(?:\((\d+)-(\d+)\))?$")


def cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5 or not all(
        _hashed_range(field, index) if field.startswith("H") else CRON_FIELD.fullmatch(field)
        for index, field in enumerate(fields)
    ):
        raise ValueError(
            f"expected a cron expression of five fields such as '0 2 * * *' (H or H(0-9) for a value of "
            f"the stack's own), got {value!r}"
        )
    return value


def _hashed_range(field: str, index: int) -> tuple[int, int] | None:
    """The range an `H` / `H(a-b)` field picks from; None for any other field or a range outside the field's."""
    match = HASHED_FIELD.fullmatch(field)
    if not match:
        return None
    low, high = CRON_RANGES[index]
    if match[1] is None:
        return low, min(high, 6) if index == 4 else high
    first, last = int(match[1]), int(match[2])
    return (first, last) if low <= first <= last <= high else None


def spread(expression: str, seed: str) -> str:
    """`expression` with its `H` fields made concrete for `seed` (the stack), as Jenkins does: `H` is a value of the
    field's range, `H(a-b)` one of a..b; the same for a stack every time, different stacks spread over the range.
    So a hundred stacks whose nightly backup is `H(0-9) 2 * * *` start over ten minutes, not in the same second."""
    fields = expression.split()
    for index, field in enumerate(fields):
        if chosen := _hashed_range(field, index):
            low, high = chosen
            digest = hashlib.sha256(f"{seed}/{index}".encode()).digest()
            fields[index] = str(low + int.from_bytes(digest[:8], "big") % (high - low + 1))
    return " ".join(fields)


INTERVAL = re.compile(r"^([1-9][0-9]{0,5})([smh])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def interval(value: str) -> str:
    if not INTERVAL.fullmatch(value):
        raise ValueError(f"expected a number of seconds, minutes or hours such as 30s, 15m or 1h, got {value!r}")
    return value


def interval_seconds(value: str) -> float:
    number, unit = INTERVAL.fullmatch(value).groups()
    return float(int(number) * UNIT_SECONDS[unit])


class BackupSettings(Strict):
    store: LocalStoreTarget | BlockStoreTarget | None = Field(
        default=None, description="Where this stack's backups go; default: INCARNATE_HOME/backups."
    )
    lock_days: int = Field(
        default=0, ge=0, le=36500, description="Write-once period asked of the store for every object."
    )
    lock_mode: Literal["locked", "unlocked"] = Field(
        default="locked",
        description="locked: nobody can shorten or remove the write-once period (compliance); "
        "unlocked: the storage account's key holder can (for trials).",
    )
    encrypt: bool = Field(
        default=True,
        description="Encrypt a new (empty) store on its first backup: AES-256-GCM, "
        "key in a Prefect Secret block; a store that has backups keeps "
        "what it is.",
    )
    schedule: Annotated[str, AfterValidator(cron)] = Field(
        default="H(0-9) 2 * * *",
        description="Cron of the nightly backup, in the stack's time zone; H picks a minute of the "
        "stack's own, so many stacks do not start in the same second.",
    )
    drill_schedule: Annotated[str, AfterValidator(cron)] = Field(
        default="H 4 * * 0", description="Cron of the weekly restore drill (a scratch stack on the stack's host)."
    )
    verify_schedule: Annotated[str, AfterValidator(cron)] = Field(
        default="H 5 * * 0", description="Cron of the weekly verify."
    )
    verify_sample: str = Field(
        default="10%",
        pattern=r"^(\d+(\.\d+)?%|\d+(\.\d+)?[KMGT]?)$",
        description="What the weekly verify re-reads: a percentage of the chunks or a byte budget (500M).",
    )
    retention: Retention = Field(default=Retention(), description="Applied after each backup and by `incarnate prune`.")
    base: Literal["auto", "logical", "physical"] = Field(
        default="auto",
        description="How databases are backed up. logical: dumps, portable across engine versions; physical: the "
        "server's files (PostgreSQL: pg_basebackup; MariaDB: mariadb-backup), restored at disk speed into the same "
        "major version, onto which its archived log is replayed; auto: physical for PostgreSQL whose data directory "
        "is a volume's root, logical otherwise (MariaDB: logical). An update whose release changes a database's "
        "image backs up with dumps.",
    )
    volume_interval: Annotated[str, AfterValidator(interval)] | None = Field(
        default=None,
        description="Take a snapshot of the stack's volumes this often between backups (30s, 15m, 1h), by its "
        "archiver, so that a recovery --at brings its files back to this point rather than to its last backup; "
        "chunks its volumes share with earlier snapshots are stored once. None: files keep their backup's "
        "recovery point.",
    )

    def volume_seconds(self) -> float | None:
        return interval_seconds(self.volume_interval) if self.volume_interval else None


HOSTNAME_PATTERN = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


# Paths go to root shells on the host (quoted there too): letters, digits and a few harmless signs, nothing more.
PATH_PATTERN = re.compile(r"^/[A-Za-z0-9._@%+=,:/-]*$")


def absolute_path(value: str) -> str:
    if not PATH_PATTERN.fullmatch(value) or ".." in value.split("/"):
        raise ValueError(
            f"expected an absolute path without '..', of letters, digits and . _ - / @ % + = , : only (no "
            f"spaces, quotes or shell characters), got {value!r}"
        )
    return value.rstrip("/") or "/"


def host_name(value: str) -> str:
    if not HOSTNAME_PATTERN.fullmatch(value):
        raise ValueError(f"expected a DNS name such as app.example.com, got {value!r}")
    return value


def nfs_export(value: str) -> str:
    server, sep, path = value.partition(":")
    if not sep:
        raise ValueError(f"expected an NFS export SERVER:/PATH, got {value!r}")
    host_name(server)
    absolute_path(path)
    return value


class NfsShare(Strict):
    """An NFS export the host mounts (fstab), so a store path on it works from the host."""

    kind: Literal["nfs"] = Field(description="An NFS export, mounted on the host through /etc/fstab (nofail).")
    source: Annotated[str, AfterValidator(nfs_export)] = Field(description="The export, SERVER:/PATH.")
    mount: Annotated[str, AfterValidator(absolute_path)] = Field(description="Mount point on the host.")


class SmbShare(Strict):
    """An SMB share the backup store (an `incarnate-smb-store` block) writes to; the host must reach it."""

    kind: Literal["smb"] = Field(description="An SMB server the host must reach (checked, not mounted).")
    server: Annotated[str, AfterValidator(host_name)] = Field(description="Host name or address of the SMB server.")
    port: int = Field(default=445, ge=1, le=65535, description="Its SMB port.")
    share: str = Field(pattern=r"^[A-Za-z0-9._$-]+$", description="The share's name.")


class HostSettings(Strict):
    """What create host applies on the container host, every time (idempotent)."""

    dns_names: list[Annotated[str, AfterValidator(host_name)]] = Field(
        default=[], description="Names of the stack; the host resolves them to itself (/etc/hosts)."
    )
    directories: list[Annotated[str, AfterValidator(absolute_path)]] = Field(
        default=[], description="Directories the stack needs on the host, created if missing."
    )
    backup_share: Annotated[NfsShare | SmbShare, Field(discriminator="kind")] | None = Field(
        default=None, description="The on-premises backup share the host must be able to use."
    )


def control_character(value: object, where: str = "") -> str | None:
    """Where (a dotted path) a string of `value` holds a control character (a newline would add lines to the host
    files and shell commands some values reach); None when none does."""
    if isinstance(value, str):
        return where if any(ord(char) < 32 or ord(char) == 127 for char in value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = control_character(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


class StackConfig(Strict):
    """What a customer repo pins: which release of which product runs, and where its data goes."""

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: object) -> object:
        where = control_character(data)
        if where is not None:
            raise ValueError(f"field '{where}': control characters (newlines, tabs, ...) are not allowed")
        return data

    stack: Annotated[
        str,
        Field(
            description="Stack name: the Compose project, unique per host; names starting with publish- or ending "
            "with -drill are reserved for scratch stacks."
        ),
    ]
    product: str = Field(description="Product name in the release store, e.g. demo.")
    release: str = Field(description="Pinned release, MAJOR.MINOR.PATCH; never latest.")
    http_port: int = Field(default=8080, ge=1, le=65535, description="Host port the app is published on.")
    timezone: str = Field(default="Europe/Berlin", description="Time zone of the nightly backup at 02:00 (IANA name).")
    registry: str | None = Field(
        default=None,
        pattern=r"^incarnate-registry/[a-z0-9-]+$",
        description="A saved incarnate-registry block (address and login) the stack's images "
        "come from; default this machine's INCARNATE_REGISTRY.",
    )
    services: list[str] = Field(default=[], description="Optional services of the release this stack activates.")
    size: str | None = Field(default=None, description="One of the release's sizes (e.g. S, M, L); default its first.")
    settings: dict[str, str | int | bool] = Field(
        default={},
        description="The customer's choices among the settings the release defines (public_url, a site title, an "
        "admin e-mail, ...); a change is deployed with `incarnate update`.",
    )
    backup: BackupSettings = Field(
        default=BackupSettings(), description="Where backups go, how long they are kept, when they run."
    )
    host: HostSettings = Field(
        default=HostSettings(), description="Applied to the host by create host on every deployment (idempotent)."
    )

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"expected an IANA time zone such as Europe/Berlin, got {value!r}") from None
        return value

    @field_validator("stack", "product")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(f"expected a lowercase name of letters, digits and dashes (at most 40), got {value!r}")
        return value

    @field_validator("stack")
    @classmethod
    def _not_a_scratch_name(cls, value: str) -> str:
        if value.startswith(PUBLISH_PREFIX) or value.endswith(DRILL_SUFFIX):
            raise ValueError(
                f"{value!r} is reserved: names starting with {PUBLISH_PREFIX!r} or ending with {DRILL_SUFFIX!r} are "
                f"the scratch stacks publishing and the drill create and tear down; choose another stack name"
            )
        return value

    @field_validator("release", mode="before")
    @classmethod
    def _release(cls, value: object) -> str:
        text = str(value) if isinstance(value, (int, float)) else value
        if not isinstance(text, str):
            raise ValueError(f"expected a release version MAJOR.MINOR.PATCH, got {value!r}")
        parse_version(text)
        return text


def describe_validation_error(source: str, error: ValidationError) -> str:
    """One sentence for the first problem pydantic found: file, field, expectation."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    kind = first["type"]
    if kind == "missing":
        return f"{source}: field '{field}' is missing; it is required."
    if kind == "extra_forbidden":
        return f"{source}: field '{field}' is not a known setting; check its spelling."
    message = first["msg"].removeprefix("Value error, ")
    return f"{source}: field '{field}': {message}." if field else f"{source}: {message}."


def load_mapping(text: str, source: str, error: type[Exception] = ConfigError) -> dict:
    """A YAML file's top-level mapping; `error` names the file when it is not valid YAML or not a mapping."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as problem:
        raise error(f"{source}: not valid YAML ({problem.__class__.__name__}: {problem}).") from None
    if not isinstance(data, dict):
        raise error(f"{source}: expected a mapping of settings at the top level.")
    return data


def parse_stack_config(text: str, source: str) -> StackConfig:
    """Validate stack.yaml text; `source` names the file (and repo/ref) in every error."""
    data = load_mapping(text, source)
    try:
        return StackConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(source, error)) from None
