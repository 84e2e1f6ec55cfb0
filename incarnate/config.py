"""The customer repo's stack.yaml: a typed schema whose errors name file, field and expectation."""

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from incarnate.errors import ConfigError

VERSION_PATTERN = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


def parse_version(text: str) -> tuple[int, int, int]:
    """`1.10.2` -> (1, 10, 2); raises ValueError for anything that is not MAJOR.MINOR.PATCH."""
    match = VERSION_PATTERN.match(text)
    if not match:
        raise ValueError(f"expected a release version MAJOR.MINOR.PATCH such as 1.0.0, got {text!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


class Strict(BaseModel):
    """Every config model refuses keys it does not know: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalStoreTarget(Strict):
    kind: Literal["local"] = "local"
    path: str = Field(description="Directory of the store; a mounted NFS path works the same.")


class BlockStoreTarget(Strict):
    block: str = Field(description="Name of a saved backup-store block (Prefect UI: Blocks).")


class Retention(Strict):
    """Which snapshots pruning keeps: the newest of each of the last N days, weeks and months."""

    keep_daily: int = Field(default=7, ge=0)
    keep_weekly: int = Field(default=4, ge=0)
    keep_monthly: int = Field(default=6, ge=0)
    min_age_days: int = Field(default=1, ge=0, description="Never prune a snapshot younger than this.")


class BackupSettings(Strict):
    store: LocalStoreTarget | BlockStoreTarget | None = Field(
        default=None, description="Where this stack's backups go; default: INCARNATE_HOME/backups."
    )
    lock_days: int = Field(default=0, ge=0, le=36500, description="Write-once period asked of the store for every object.")
    retention: Retention = Retention()


class StackConfig(Strict):
    """What a customer repo pins: which release of which product runs, and where its data goes."""

    stack: Annotated[str, Field(description="Stack name: the Compose project, unique per host.")]
    product: str = Field(description="Product name in the release store, e.g. demo.")
    release: str = Field(description="Pinned release, MAJOR.MINOR.PATCH; never latest.")
    http_port: int = Field(default=8080, ge=1, le=65535, description="Host port the app is published on.")
    timezone: str = Field(default="Europe/Berlin", description="Time zone of the nightly backup at 02:00 (IANA name).")
    backup: BackupSettings = BackupSettings()

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
        if not NAME_PATTERN.match(value):
            raise ValueError(
                f"expected a lowercase name of letters, digits and dashes (at most 40), got {value!r}"
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
    return f"{source}: field '{field}': {message}."


def parse_stack_config(text: str, source: str) -> StackConfig:
    """Validate stack.yaml text; `source` names the file (and repo/ref) in every error."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML ({error.__class__.__name__}: {error}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level.")
    try:
        return StackConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(source, error)) from None
