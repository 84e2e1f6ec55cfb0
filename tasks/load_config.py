from prefect import task

from incarnate import pipeline
from incarnate.releases import ReleaseStore
from tasks import STAGE


@task(name="load config", **STAGE)
def load_config(repo: str, ref: str, releases: ReleaseStore, registry: str) -> pipeline.Deployment:
    """Customer repo at ref -> validated stack.yaml, its release descriptor, its images checked."""
    return pipeline.load_config(repo, ref, releases, registry)
