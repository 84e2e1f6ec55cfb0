"""A private image registry as a Prefect block: its address and login (the password a SecretStr, masked in the UI).

Not prefect-docker's DockerRegistryCredentials: that logs in through docker-py's API on one engine, while a stack's
images are pulled by the docker CLI and Compose where the stack's commands run (also for SSH hosts), which log in
with `docker login --password-stdin`; and the registry check needs the same login. Four fields do not justify
another dependency.
"""

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks import load_saved
from incarnate.registry import Registry


class RegistryLogin(Block):
    """The registry a stack's (or this machine's) images come from, with its login."""

    _block_type_name = "incarnate registry"
    _description = (
        "A private image registry: address (host[:port]) and login; its TLS CA goes into /etc/docker/certs.d."
    )

    address: str = Field(description="host[:port] of the registry, as compose.yaml gets it in ${INCARNATE_REGISTRY}.")
    username: str
    password: SecretStr

    def registry(self, source: str) -> Registry:
        return Registry(self.address, self.username, self.password, source)


def load_registry_block(slug: str, named: str) -> Registry:
    """The registry of a saved block `incarnate-registry/NAME`; `named` says which setting named it."""
    return load_saved(slug, named).registry(f"{named} {slug}")
