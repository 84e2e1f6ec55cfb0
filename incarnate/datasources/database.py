"""What every database engine shares: the database, the Compose service that runs it, its container."""

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from functools import cached_property
from typing import BinaryIO, ClassVar

from incarnate.backup_format import artifact_name
from incarnate.compose import ComposeProject
from incarnate.host import Host


class Database(ABC):
    """A database inside a running service's container; an engine module subclasses it with its own commands."""

    kind: ClassVar[str] = "database"
    engine: ClassVar[str]

    def __init__(self, project: ComposeProject, name: str, service: str) -> None:
        self.project, self.target, self.service = project, name, service

    @property
    def artifact(self) -> str:
        return artifact_name(self.kind, self.target)

    @property
    def host(self) -> Host:
        return self.project.host

    @cached_property
    def container(self) -> str:
        """Looked up once: every operation of one stage talks to the same running container."""
        return self.project.container(self.service)

    @abstractmethod
    def is_empty(self) -> bool:
        """No tables (the database itself may exist, created by the container's init)."""

    @abstractmethod
    def dump(self) -> AbstractContextManager[BinaryIO]:
        """A consistent dump, streamed."""

    @abstractmethod
    def load(self, source: BinaryIO) -> None:
        """Load a dump this engine made."""

    @abstractmethod
    def reset(self) -> None:
        """Back to empty after a failed load."""

    @abstractmethod
    def row_counts(self) -> dict[str, int]:
        """Exact rows per table: what a restore drill compares."""
