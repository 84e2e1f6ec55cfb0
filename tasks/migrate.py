from prefect import task

from incarnate import pipeline
from incarnate.compose import ComposeProject
from incarnate.snapshots import Snapshot
from tasks import STAGE


@task(name="migrate", **STAGE)
def migrate(project: ComposeProject, deployment: pipeline.Deployment, snapshot: Snapshot) -> dict:
    """Wait until the app reports the pinned release and schema version; record the deployment."""
    return pipeline.migrate(project, deployment, snapshot)
