"""The errors an operator reads. Each carries one sentence: what failed, where, what to do.

The command line maps them to exit codes in one place (`exit_code`), so a flow, a task
or plain code can raise them without knowing how it was called.
"""


class IncarnateError(Exception):
    """Base of every error incarnate reports to an operator."""

    exit_code = 1


class ConfigError(IncarnateError):
    """The customer repo or its stack.yaml is wrong; nothing was touched."""

    exit_code = 2


class ReleaseError(IncarnateError):
    """A release, its files or its images are missing; nothing was touched."""

    exit_code = 2


class HostError(IncarnateError):
    """The container host (Docker engine, Compose, directories) cannot be used."""


class StoreError(IncarnateError):
    """A backup or release store cannot be read or written."""


class ObjectMissing(StoreError):
    """A key the caller expected is not in the store."""


class IntegrityError(IncarnateError):
    """Stored data does not match its manifest: a checksum, a size, a missing artifact."""


class UnreadableSnapshots(IntegrityError):
    """A stack has snapshots and none can be read: refused, never taken for a stack without any (whose deployment
    would restore the vanilla backup, an empty app)."""

    exit_code = 2


class EncryptionLost(IntegrityError):
    """An encrypted store lost what says how to open it (keys/config.json): refused, never read or written plain."""


class StageError(IncarnateError):
    """A stage of the pipeline failed on the running stack (start, health, migration)."""


class UnrecordedData(StageError):
    """The host holds data of the stack that no deployment recorded: a deployment would keep it and migrate it with
    no backup; refused before anything is loaded."""

    exit_code = 2


def kind_of(error: BaseException) -> type[IncarnateError]:
    """The class a failure is raised again as, with more said: its own when it is incarnate's (so its exit code
    stays), else StageError."""
    return type(error) if isinstance(error, IncarnateError) else StageError


def exit_code(error: BaseException) -> int:
    """Exit code for an error that ended a command: 2 for bad input, 1 for any other failure."""
    return error.exit_code if isinstance(error, IncarnateError) else 1


def tail(text: bytes | str, lines: int = 3) -> str:
    """The last lines of a command's output joined on one line, for an error sentence."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " / ".join(kept) or "no output"
