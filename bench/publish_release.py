"""Benchmark: how long publishing a release takes, by step, against the floor of running it at all.

    .venv/bin/python bench/publish_release.py [RELEASE_FOLDER] [--rounds 3]

Each round publishes the release folder (default: the demo's 1.1.0) into a fresh, empty release store with
`incarnate release publish` (the publish-release flow: check, scratch stack up, migrations, vanilla backup,
tear down, write), and, as the baseline in the same run, brings the same compose file up on empty volumes with
plain `docker compose up --wait` (its health checks every second: bench/fast_health.py) and removes it again. Prints
each step's seconds (best round) and the ratio.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli import prefect_server  # noqa: E402

prefect_server.connect()  # before Prefect is first imported: it reads its settings then

from bench.fast_health import fast_health_override  # noqa: E402
from incarnate import settings  # noqa: E402
from incarnate.host import Host, free_port  # noqa: E402
from incarnate.publish import read_release_folder, scratch_variables  # noqa: E402

STEP = re.compile(r"publish-release [\w.-]+: (?P<step>[a-z ]+) ok \((?P<seconds>[\d.]+) s\)")


def published(folder: Path) -> tuple[float, dict[str, float]]:
    """Wall seconds of `incarnate release publish` into an empty store, and the seconds of each step it printed."""
    with tempfile.TemporaryDirectory(prefix="bench-releases-") as store:
        began = time.perf_counter()
        result = subprocess.run(
            [str(Path(sys.executable).with_name("incarnate")), "release", "publish", str(folder)],
            capture_output=True,
            text=True,
            env={**os.environ, "INCARNATE_RELEASES": store},
        )
        wall = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"publish failed: {result.stderr[-2000:]}")
    return wall, {match["step"]: float(match["seconds"]) for match in STEP.finditer(result.stdout + result.stderr)}


def plain_up(folder: Path) -> float:
    """`compose up --wait` of the release on empty volumes (its health checks every second), then `down
    --volumes`: running it at all."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-plain-up-"))
    compose = [
        *Host().compose_command(),
        "--project-name",
        "bench-plain-up",
        "--file",
        str(folder / "compose.yaml"),
        "--file",
        str(fast_health_override(folder / "compose.yaml", scratch)),
    ]
    descriptor = read_release_folder(folder).descriptor  # its secrets too: compose.yaml refuses to run without them
    env = {**os.environ, **scratch_variables(descriptor, settings.registry(), str(free_port()))}
    began = time.perf_counter()
    try:
        subprocess.run([*compose, "up", "--detach", "--wait"], check=True, capture_output=True, env=env)
        return time.perf_counter() - began
    finally:
        subprocess.run([*compose, "down", "--volumes"], capture_output=True, env=env)
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(ROOT / "examples" / "demo" / "releases" / "1.1.0"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(args.folder).absolute()
    rounds = [(published(folder), plain_up(folder)) for _ in range(args.rounds)]
    (wall, steps), _ = min(rounds, key=lambda pair: pair[0][0])
    floor = min(plain for _, plain in rounds)
    print(f"publish {folder} (best of {args.rounds}): {wall:.1f} s wall")
    for step, seconds in steps.items():
        print(f"  {step:<14} {seconds:5.1f} s")
    print(f"baseline compose up --wait on empty volumes: {floor:.1f} s; publish / baseline = {wall / floor:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
