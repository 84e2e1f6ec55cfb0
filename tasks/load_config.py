from prefect import task

from blocks import resolve
from incarnate.pinned import PinnedStack
from incarnate.releases import ReleaseStore
from incarnate.repo import CustomerConfig
from incarnate.stages import load_config as stage
from tasks import STAGE


@task(name=stage.NAME, **STAGE)
def load_config(repo: str, ref: str, releases: ReleaseStore, loaded: CustomerConfig | None = None) -> PinnedStack:
    """Customer repo at ref -> validated stack.yaml, its release descriptor, its images checked in its registry."""
    return stage.run(repo, ref, releases, resolve.registry, loaded)
