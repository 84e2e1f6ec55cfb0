"""What a deployment brings up: a customer's stack as its repo pins it at one commit, and that release."""

from dataclasses import dataclass

from incarnate.errors import ReleaseError
from incarnate.releases import ReleaseDescriptor
from incarnate.repo import CustomerConfig


@dataclass(frozen=True)
class PinnedStack:
    """What load config resolved: the customer's config at a commit, the release it pins, the registry to pull from."""

    customer: CustomerConfig
    release: ReleaseDescriptor
    registry: str

    @property
    def stack(self) -> str:
        return self.customer.config.stack

    def compose_variables(self) -> dict[str, str]:
        """What the release's compose file may use besides its own defaults."""
        return {"INCARNATE_REGISTRY": self.registry, "HTTP_PORT": str(self.customer.config.http_port)}

    def refuse_downgrade(self, data_schema: int, data: str) -> None:
        """A release must not run on data of a newer schema than its own: its app cannot read it."""
        if data_schema > self.release.schema_version:
            raise ReleaseError(
                f"stack {self.stack}: {data} has schema version {data_schema}, newer than release "
                f"{self.release.release} understands ({self.release.schema_version}); deploy a newer release, "
                f"or roll back to an earlier incarnation with its own backup (`incarnate rollback`). Nothing was changed."
            )
