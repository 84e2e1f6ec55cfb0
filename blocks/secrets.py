"""Stack secrets in Prefect Secret blocks, one per stack (`incarnate-stack-<stack>`), its value a JSON object of
the stack's secrets: masked in the UI, reachable from every machine that runs the flows, restorable there."""

from prefect.blocks.system import Secret


class PrefectSecretVault:
    def block_name(self, stack: str) -> str:
        return f"incarnate-stack-{stack}"

    def where(self, stack: str) -> str:
        return f"Prefect Secret block {self.block_name(stack)}"

    def load(self, stack: str) -> dict[str, str] | None:
        try:
            value = Secret.load(self.block_name(stack)).get()
        except ValueError:  # no such block
            return None
        return {str(name): str(secret) for name, secret in value.items()} if isinstance(value, dict) else None

    def save(self, stack: str, values: dict[str, str]) -> None:
        Secret(value=values).save(self.block_name(stack), overwrite=True)
