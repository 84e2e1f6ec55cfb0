from prefect import task

from incarnate import pipeline
from incarnate.compose import ComposeProject
from incarnate.snapshots import Snapshot
from incarnate.stores import Store
from tasks import STAGE


@task(name="restore", **STAGE)
def restore(project: ComposeProject, deployment: pipeline.Deployment, store: Store, snapshot: Snapshot) -> dict[str, str]:
    """Data services up; each artifact loaded into its database or volume if that is empty."""
    return pipeline.restore(project, deployment, store, snapshot)
