"""Machine-wide defaults, each overridable by an environment variable.

Per-stack choices live in the customer repo's stack.yaml; these are only where this
machine keeps things when nobody said otherwise.
"""

import math
import os
import re
import socket
from pathlib import Path

from incarnate.errors import ConfigError


def home() -> Path:
    """Where incarnate keeps its state on this machine (INCARNATE_HOME)."""
    return Path(os.environ.get("INCARNATE_HOME", "/var/lib/incarnate"))


def releases() -> str:
    """The release store (INCARNATE_RELEASES): an absolute path, or a saved store block TYPE/NAME."""
    return os.environ.get("INCARNATE_RELEASES") or str(home() / "releases")


def release_lock() -> tuple[int, str]:
    """Write-once period (days) and mode asked of the release store for what is published
    (INCARNATE_RELEASES_LOCK_DAYS, default 0; INCARNATE_RELEASES_LOCK_MODE, locked or unlocked)."""
    days, mode = (
        os.environ.get("INCARNATE_RELEASES_LOCK_DAYS", "0"),
        os.environ.get("INCARNATE_RELEASES_LOCK_MODE", "locked"),
    )
    if not days.isdigit() or mode not in ("locked", "unlocked"):
        raise ConfigError(
            f"INCARNATE_RELEASES_LOCK_DAYS={days!r} / INCARNATE_RELEASES_LOCK_MODE={mode!r}: expected a "
            f"number of days and locked or unlocked."
        )
    return int(days), mode


def default_backup_path() -> Path:
    """The customer backup store used when stack.yaml names none."""
    return home() / "backups"


def registry() -> str:
    """The image registry every image is pulled from (INCARNATE_REGISTRY), host[:port]."""
    return os.environ.get("INCARNATE_REGISTRY", "localhost:5000")


def seconds(variable: str, default: float) -> float:
    """A number of seconds from the environment variable (unset or empty: the default); anything else is refused
    naming the variable, before a run depends on it."""
    value = os.environ.get(variable) or ""
    if not value:
        return float(default)
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{variable}={value!r}: expected a number of seconds, at least 0.")
    return number


def stall_seconds() -> float:
    """How long a dump or archive may go without a byte of progress before it is ended (INCARNATE_STALL_SECONDS)."""
    return seconds("INCARNATE_STALL_SECONDS", 600)


def store_lock_ttl() -> float:
    """How long a store lock lives without renewal (INCARNATE_STORE_LOCK_TTL), on the reader's own clock."""
    return seconds("INCARNATE_STORE_LOCK_TTL", 600)


def store_lock_wait() -> float:
    """How long a backup or restore waits for a clean-up of its store to finish (INCARNATE_STORE_LOCK_WAIT)."""
    return seconds("INCARNATE_STORE_LOCK_WAIT", 1800)


def prune_wait() -> float:
    """How long a prune waits for running backups before it skips the chunk clean-up (INCARNATE_PRUNE_WAIT);
    meanwhile new backups of the store wait for it, so this bounds their delay too."""
    return seconds("INCARNATE_PRUNE_WAIT", 600)


def lock_wait_seconds() -> float:
    """How long a run waits for another run on the same stack to finish (INCARNATE_LOCK_WAIT_SECONDS)."""
    return seconds("INCARNATE_LOCK_WAIT_SECONDS", 1800)


def prefect_wait_seconds() -> float:
    """How long a command waits for the Prefect server to answer before it stops (INCARNATE_PREFECT_WAIT_SECONDS):
    a server busy at 02:00 answers late, and waiting is safe; running without it is not."""
    return seconds("INCARNATE_PREFECT_WAIT_SECONDS", 60)


def parallel_artifacts() -> int:
    """How many artifacts of one snapshot a backup reads, or a restore loads, at once (INCARNATE_PARALLEL_ARTIFACTS;
    default: the cores, at most 4): each is a stream through the host and a pipeline of chunk transfers."""
    return at_least_one(
        os.environ.get("INCARNATE_PARALLEL_ARTIFACTS", str(min(4, os.cpu_count() or 1))), "INCARNATE_PARALLEL_ARTIFACTS"
    )


def archive_parallel() -> int:
    """How many stacks an archiver's round ships at once (INCARNATE_ARCHIVE_PARALLEL, default 8): a stack's turn is
    mostly waiting (its repo read, its store, its host's engine), so a thousand stacks one after the other took
    minutes a round."""
    return at_least_one(os.environ.get("INCARNATE_ARCHIVE_PARALLEL", "8"), "INCARNATE_ARCHIVE_PARALLEL")


def at_least_one(value: str, named: str, given: str = "") -> int:
    """A whole number, at least 1: the setting `named`, `given` by an option or the environment."""
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{named} {value!r}{f' ({given})' if given else ''}: expected a whole number, at least 1.")
    return int(value)


def max_runs(value: str | None = None) -> int:
    """How many flow runs `incarnate serve` runs at once (--max-runs, INCARNATE_MAX_RUNS; default: the cores, at least
    2). Each is a Python process of 150-250 MB; the rest wait in Prefect as Scheduled/Late and start in order as
    slots free, so a hundred stacks due at 02:00 cost the serving machine K processes, not a hundred."""
    value = value or os.environ.get("INCARNATE_MAX_RUNS") or str(max(2, os.cpu_count() or 1))
    return at_least_one(value, "maximum concurrent runs", "--max-runs or INCARNATE_MAX_RUNS")


SERVE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def serve_name(value: str | None = None) -> str:
    """The name of this machine's `incarnate serve` (--name, INCARNATE_SERVE_NAME; default its host name): the name of
    its deployments (`backup/NAME`, ...). Machines that serve stacks on one Prefect server need names of their own."""
    chosen = value or os.environ.get("INCARNATE_SERVE_NAME") or re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())
    if not SERVE_NAME.fullmatch(chosen):
        raise ConfigError(
            f"serve name {chosen!r} (--name or INCARNATE_SERVE_NAME): expected letters, digits, '.', '_' or '-' (at "
            f"most 63), starting with a letter or digit."
        )
    return chosen


def progress_after() -> float:
    """How long a transfer runs before it shows progress (INCARNATE_PROGRESS_AFTER, seconds): shorter ones are
    quiet."""
    return seconds("INCARNATE_PROGRESS_AFTER", 3)


def ready_seconds() -> float:
    """How long a started stack may take to report its release and schema version (INCARNATE_READY_SECONDS)."""
    return seconds("INCARNATE_READY_SECONDS", 300)


def archive_seconds() -> float:
    """How often the archiver ships what each stack's databases wrote (INCARNATE_ARCHIVE_SECONDS, 1 to 3600): the
    recovery point of a total loss."""
    value = seconds("INCARNATE_ARCHIVE_SECONDS", 10)
    if not 1 <= value <= 3600:
        raise ConfigError(f"INCARNATE_ARCHIVE_SECONDS={value:g}: expected seconds between 1 and 3600.")
    return value


RUN_STARTS = ("forked", "fresh")


def run_start() -> str:
    """How serve starts a run's process (INCARNATE_RUN_START): `forked` (default) from a process that imported the
    flows once, or `fresh`, a new Python each (deployments/run_start.py)."""
    chosen = os.environ.get("INCARNATE_RUN_START") or RUN_STARTS[0]
    if chosen not in RUN_STARTS:
        raise ConfigError(f"INCARNATE_RUN_START={chosen!r}: expected one of {', '.join(RUN_STARTS)}.")
    return chosen


def stacks_dir() -> Path:
    """Where each stack's working files (compose file, env, state) live on a local host."""
    return home() / "stacks"


def ssh_identity() -> Path:
    """The private key for ssh:// hosts (INCARNATE_SSH_KEY): default the first of ~/.ssh/id_ed25519, id_ecdsa,
    id_rsa."""
    if os.environ.get("INCARNATE_SSH_KEY"):
        return Path(os.environ["INCARNATE_SSH_KEY"])
    candidates = [Path.home() / ".ssh" / name for name in ("id_ed25519", "id_ecdsa", "id_rsa")]
    return next((path for path in candidates if path.is_file()), candidates[0])


def ssh_known_hosts() -> Path:
    """The pinned host keys for ssh:// hosts (INCARNATE_KNOWN_HOSTS): default ~/.ssh/known_hosts."""
    return Path(os.environ.get("INCARNATE_KNOWN_HOSTS", str(Path.home() / ".ssh" / "known_hosts")))


def check() -> None:
    """Read every setting that has a value to check, so a bad one is refused when a command (or serve, or a worker)
    starts, not where a stage first reads it, perhaps after an update stopped the app."""
    for read in (
        release_lock,
        stall_seconds,
        store_lock_ttl,
        store_lock_wait,
        prune_wait,
        lock_wait_seconds,
        parallel_artifacts,
        progress_after,
        ready_seconds,
        prefect_wait_seconds,
        archive_seconds,
        run_start,
    ):
        read()
