from prefect import task
from prefect.events import emit_event

from incarnate.compose import ComposeProject
from incarnate.config import BackupSettings
from incarnate.stages import backup as stage
from incarnate.stores import Store
from tasks import NETWORK_RETRIES, STAGE, shows_progress, transient

BACKUP_COMPLETED = "incarnate.backup.completed"  # what the staleness alert (deployments/alerts.py) waits for


def stack_resource(stack: str) -> str:
    return f"incarnate.stack.{stack}"


@task(name=stage.NAME, retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)
@shows_progress
def backup(project: ComposeProject, store: Store, settings: BackupSettings) -> stage.BackupResult:
    """Database dumps and volume archives, chunked into the store; the manifest last. A committed snapshot is
    announced as an event, whoever ran the backup (the nightly deployment, a deployment's closing backup, the CLI)."""
    result = stage.run(project, store, settings.lock_days, settings.lock_mode, settings.base)
    emit_event(
        event=BACKUP_COMPLETED,
        resource={"prefect.resource.id": stack_resource(project.name), "prefect.resource.name": project.name},
        payload={"snapshot": result.snapshot.id},
    )
    return result
