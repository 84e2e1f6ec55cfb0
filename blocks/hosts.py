"""Container hosts reached over SSH, as Prefect blocks: what a served run needs to reach a host.

A flow names a saved host as `incarnate-ssh-host/NAME` (the `docker_host` parameter). The
private key is a SecretStr; the host key is pinned, so a rebuilt or impostor host is refused.
"""

from typing import TYPE_CHECKING

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from incarnate.errors import ConfigError

if TYPE_CHECKING:  # paramiko and fabric load where a session is made: a run on this machine never needs them
    from incarnate.ssh import SshSession


class SshHost(Block):
    """A Debian container host incarnate reaches over SSH (root, or a user with password-less sudo)."""

    _block_type_name = "incarnate ssh host"
    _description = "A container host reached over SSH: address, login, private key, and its pinned host key."

    address: str = Field(description="Host name or IP address.", pattern=r"^[A-Za-z0-9][A-Za-z0-9.:-]*$")
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(
        default="root",
        description="Login; root, or a user with password-less sudo.",
        pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
    )
    private_key: SecretStr = Field(description="Unencrypted OpenSSH private key (Ed25519, ECDSA or RSA) for the login.")
    host_key: str = Field(
        description="The host's public key, pinned: a line of `ssh-keyscan -p PORT HOST` "
        "(or `TYPE BASE64`), verified on the host itself."
    )

    def session(self) -> "SshSession":
        from incarnate.ssh import SshAddress, SshCredentials, SshSession

        credentials = SshCredentials(
            self.private_key.get_secret_value(), self.host_key, f"SSH host block {self._block_document_name}"
        )
        return SshSession(SshAddress(host=self.address, user=self.user, port=self.port), credentials)


def load_ssh_host_block(name: str) -> SshHost:
    try:
        return SshHost.load(name)
    except ValueError as error:
        raise ConfigError(f"host incarnate-ssh-host/{name}: no such saved SSH host block ({error}).") from None
