"""A vault in memory (incarnate.secrets.Vault), for tests of secrets and store keys without a Prefect server."""


class MemoryVault:
    def __init__(self) -> None:
        self.kept: dict[str, dict[str, str]] = {}
        self.saves = 0

    def where(self, name: str) -> str:
        return f"vault entry {name}"

    def load(self, name: str) -> dict[str, str] | None:
        return dict(self.kept[name]) if name in self.kept else None

    def save(self, name: str, values: dict[str, str]) -> None:
        self.kept[name] = dict(values)
        self.saves += 1
