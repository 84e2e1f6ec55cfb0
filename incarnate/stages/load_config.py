"""Load config: the customer repo at a ref, its validated stack.yaml, the release it pins, that release's images."""

from incarnate.pinned import PinnedStack
from incarnate.releases import ReleaseStore, check_images
from incarnate.repo import load_customer_config

NAME = "load config"


def run(repo: str, ref: str, releases: ReleaseStore, registry: str) -> PinnedStack:
    customer = load_customer_config(repo, ref)
    descriptor = releases.descriptor(customer.config.product, customer.config.release)
    check_images(registry, descriptor)
    return PinnedStack(customer=customer, release=descriptor, registry=registry)
