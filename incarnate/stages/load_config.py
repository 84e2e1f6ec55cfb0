"""Load config: the customer repo at a ref, its validated stack.yaml, the release it pins (with the optional services
it activates and its size), that release's images as published (by digest), checked to be in the registry."""

from collections.abc import Callable

from incarnate import product_settings
from incarnate.pinned import PinnedStack
from incarnate.publish import check_policy
from incarnate.registry import Registry, check_pinned
from incarnate.releases import ReleaseStore, published_digests
from incarnate.repo import CustomerConfig, load_customer_config

NAME = "load config"


def run(
    repo: str,
    ref: str,
    releases: ReleaseStore,
    registry_for: Callable[[str | None], Registry],
    loaded: CustomerConfig | None = None,
) -> PinnedStack:
    """`registry_for` turns stack.yaml's `registry` (None: this machine's) into the registry its images come from;
    `loaded`: the repo at that ref, when the flow has read it already (a clone a read)."""
    customer = loaded or load_customer_config(repo, ref)
    config = customer.config
    descriptor = releases.descriptor(config.product, config.release)
    source = f"{repo} at {customer.commit[:10]}: stack.yaml"
    descriptor.refuse_unknown(config.services, config.size, source)
    settings = product_settings.resolve(descriptor.settings, config.settings, source, config.http_port)
    release = descriptor.activated(config.services)
    registry = registry_for(config.registry)
    check_policy(releases, descriptor, registry.address)
    digests = published_digests(release, releases.published(config.product, config.release))
    check_pinned(registry, digests, f"{release.product} {release.release}")
    return PinnedStack(
        customer=customer,
        release=release,
        registry=registry.address,
        digests=digests,
        size=config.size or descriptor.default_size,
        settings=settings,
        login=registry,
    )
