"""The hand floors' way to wait for health: Docker checking every second.

A product's health checks run at a sensible interval (the demo's: 30 s), and Docker runs the first one an
interval after the start, so a plain `compose up --wait` would wait that long; incarnate runs the checks itself
every half second. A floor that waited for Docker's interval would flatter incarnate, so the floors bring the
same compose file up with this override: the same checks, every second.
"""

from pathlib import Path

import yaml


def fast_health_override(compose_file: Path, folder: Path) -> Path:
    """A compose override, written into `folder`, that runs every service's own health check every second."""
    services = yaml.safe_load(compose_file.read_text())["services"]
    override = folder / "fast-health.yaml"
    override.write_text(yaml.safe_dump({"services": {name: {"healthcheck": {"interval": "1s"}} for name in services}}))
    return override
