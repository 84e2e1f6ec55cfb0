"""Import an old installation: its database dumps and file directories become the first
snapshot in the customer store, then the normal install runs from it."""

from prefect import flow

from blocks import resolve
from flows.install import install_from_backup
from incarnate.import_installation import import_snapshot
from incarnate.stages.fetch_backup import ensure_release_files
from tasks.load_config import load_config


@flow(name="import", log_prints=True)
def import_installation(
    repo: str,
    dumps: dict[str, str],
    volumes: dict[str, str] | None = None,
    ref: str = "HEAD",
    docker_host: str | None = None,
) -> dict:
    """Seed an empty customer store from an old installation, then install from it.

    Args:
        repo: the customer repo (git URL or path); its release must understand the imported data.
        dumps: database name -> path of a plain SQL dump (mariadb-dump or pg_dump) on the machine running the flow.
        volumes: volume name -> directory whose content becomes that volume.
        ref: branch, tag or commit of the customer repo.
        docker_host: the container host: empty for this machine, ssh://USER@HOST[:PORT], incarnate-ssh-host/NAME (a
        saved SSH host block), or a Docker engine address.
    """
    releases = resolve.release_store()
    pinned = load_config(repo, ref, releases)
    store = resolve.backup_store(pinned.customer.config)
    ensure_release_files(pinned, store, releases)
    imported = import_snapshot(pinned, store, dumps, volumes or {})
    print(f"imported snapshot {imported.id} into {store.location}")
    return install_from_backup("install", repo, ref, docker_host, imported.id)
