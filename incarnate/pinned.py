"""What a deployment brings up: a customer's stack as its repo pins it at one commit, and that release."""

from dataclasses import dataclass

from pydantic import SecretStr

from incarnate.errors import ReleaseError
from incarnate.registry import Registry
from incarnate.releases import ReleaseDescriptor, digest_overrides
from incarnate.repo import CustomerConfig


@dataclass(frozen=True)
class PinnedStack:
    """What load config resolved: the customer's config at a commit, the release it pins, the registry to pull from."""

    customer: CustomerConfig
    release: ReleaseDescriptor
    registry: str
    digests: dict[str, str]  # repository:tag -> the digest it was published with: what the stack runs
    size: str | None = None  # one of the release's sizes; None when it defines none
    settings: dict[str, str] | None = None  # the customer's settings as compose variables (secret ones not among them)
    login: Registry | None = None  # the registry's login, when it needs one
    secrets_of: str = (
        ""  # whose secrets the stack uses, when not its own (a drill's scratch stack: the drilled stack's)
    )

    @property
    def secrets_stack(self) -> str:
        return self.secrets_of or self.stack

    @property
    def stack(self) -> str:
        return self.customer.config.stack

    def compose_variables(self, secrets: dict[str, SecretStr] | None = None) -> dict[str, str]:
        """What the release's compose file may use besides its own defaults: for the stack's 0600 env file only."""
        return {
            "INCARNATE_REGISTRY": self.registry,
            "HTTP_PORT": str(self.customer.config.http_port),
            "COMPOSE_PROFILES": ",".join(
                self.customer.config.services
            ),  # Compose starts the activated optional services
            **(self.settings or {}),
            **{name: value.get_secret_value() for name, value in (secrets or {}).items()},
        }

    def image_overrides(self) -> dict:
        return digest_overrides(self.release, self.registry, self.digests)

    def refuse_downgrade(self, data_schema: int, data: str) -> None:
        """A release must not run on data of a newer schema than its own: its app cannot read it."""
        if data_schema > self.release.schema_version:
            raise ReleaseError(
                f"stack {self.stack}: {data} has schema version {data_schema}, newer than release "
                f"{self.release.release} understands ({self.release.schema_version}); deploy a newer release, "
                f"or roll back to an earlier incarnation with its own backup (`incarnate rollback`). Nothing was "
                f"changed."
            )
