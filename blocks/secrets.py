"""Secrets in Prefect Secret blocks: one per stack (`incarnate-stack-<stack>`), its value a JSON object of the
stack's secrets, and one per encrypted backup store (`incarnate-store-key-<store id>`: its master key and
recovery passphrase). Masked in the UI, reachable from every machine that runs the flows, restorable there."""

from prefect.blocks.system import Secret


class PrefectSecretVault:
    def __init__(self, prefix: str = "incarnate-stack-") -> None:  # incarnate-store-key- for store keys
        self.prefix = prefix

    def block_name(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def where(self, name: str) -> str:
        return f"Prefect Secret block {self.block_name(name)}"

    def load(self, name: str) -> dict[str, str] | None:
        try:
            value = Secret.load(self.block_name(name)).get()
        except ValueError:  # no such block
            return None
        return {str(key): str(secret) for key, secret in value.items()} if isinstance(value, dict) else None

    def save(self, name: str, values: dict[str, str]) -> None:
        Secret(value=values).save(self.block_name(name), overwrite=True)
