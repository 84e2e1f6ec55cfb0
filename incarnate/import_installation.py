"""Import an old installation: its database dumps and file directories become the stack's first snapshot."""

from pathlib import Path

from incarnate.backup_format import Snapshot, SnapshotWriter, artifact_name, new_snapshot_prefix, scan_snapshots
from incarnate.errors import ConfigError
from incarnate.host import Host
from incarnate.pinned import PinnedStack
from incarnate.stores import Store


def import_snapshot(pinned: PinnedStack, store: Store, dumps: dict[str, str], directories: dict[str, str]) -> Snapshot:
    """A dump file per database and a directory per volume (a volume without one starts empty), as a snapshot."""
    release, config = pinned.release, pinned.customer.config
    readable, unreadable = scan_snapshots(store, config.stack)
    if readable or unreadable:  # one that cannot be read is a snapshot all the same
        raise ConfigError(
            f"stack {config.stack} already has snapshots in {store.location}; an import only seeds an empty store."
        )
    expected = ({spec.name for spec in release.databases}, {spec.name for spec in release.volumes})
    if set(dumps) != expected[0] or not set(directories) <= expected[1]:
        raise ConfigError(
            f"import for release {release.release}: expected a dump for each of the databases "
            f"{sorted(expected[0])} and directories only for the volumes {sorted(expected[1])}."
        )
    with SnapshotWriter(store, new_snapshot_prefix(config.stack)) as writer:
        for spec in release.databases:
            path = Path(dumps[spec.name])
            if not path.is_file():
                raise ConfigError(f"import: dump {path} for database {spec.name} is not a readable file.")
            with open(path, "rb") as dump:
                writer.add(artifact_name("database", spec.name), "database", spec.name, spec.engine, dump)
        for spec in release.volumes:
            folder = directories.get(spec.name)
            if folder is not None and not Path(folder).is_dir():
                raise ConfigError(f"import: {folder} for volume {spec.name} is not a directory.")
            command = (
                ["tar", "--create", "--directory", folder, "--file", "-", "."]
                if folder
                else ["tar", "--create", "--file", "-", "--files-from", "/dev/null"]
            )
            with Host().stream_out(command, what=f"archiving {folder or 'an empty volume'}") as archive:
                writer.add(artifact_name("volume", spec.name), "volume", spec.name, None, archive)
        return writer.commit(
            stack=config.stack,
            product=config.product,
            release=release.release,
            schema_version=release.schema_version,
            config_commit=pinned.customer.commit,
            origin="import",
        )
