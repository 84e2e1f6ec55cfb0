"""A small smoke of every benchmark in bench/, so none rots: each runs end to end at a tiny size and prints its
ratio. The figures in the README come from full-size runs; nothing here times anything."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize(
    "script, args, prints",
    [
        ("backup_vs_restic.py", ("--rows", "2000", "--nights", "2"), "stored bytes incarnate"),
        ("ssh_transport.py", ("--mb", "5"), "ratio ssh/direct"),
        ("physical_base.py", ("--gb", "0.005"), "physical / logical ="),
        ("deployment_scale.py", ("--stacks", "3", "--sample", "1", "--scheduler-wait", "0"), "per flow / per stack:"),
        ("publish_release.py", ("--rounds", "1"), "publish / baseline ="),
        (
            "lying_health.py",
            ("--restores", "1", "--baseline", "1", "--init-pause", "2"),
            "lying health: 1 of 1 restored",
        ),
        (
            "encryption.py",
            ("--rows", "2000", "--nights", "2", "--mb", "4", "--rounds", "1"),
            "throughput encrypted / plain =",
        ),
        (  # it runs `serve`, which replaces the server's automations: in tests/conftest.py's group prefect-server
            "nightly_scale.py",
            ("--stacks", "2", "--max-runs", "1", "--idle-seconds", "2"),
            "verified the newest snapshot of 2 stacks (every chunk re-read): 0 bad",
        ),
        (  # it runs `serve` too: in the group prefect-server
            "fleet_scale.py",
            ("--stacks", "5", "--pool", "bench-smoke-pool", "--triggers", "1"),
            "serve stopped",
        ),
    ],
)
def test_benchmark_runs_at_a_small_size(script, args, prints):
    assert prints in bench(script, *args)


def test_orchestration_benchmark_runs_one_round(customer):
    assert customer.install().returncode == 0
    assert "best of 1: flow" in bench("orchestration_overhead.py", str(customer.repo), "--rounds", "1")


def test_recovery_speed_benchmark_runs_at_a_tiny_size(customer):
    assert customer.install().returncode == 0
    printed = bench("recovery_speed.py", str(customer.repo), "--gb", "0.005", "--memory-at", "0.01")
    assert "backup storing new data, best of 2: incarnate / floor =" in printed
    assert "backup, best of 2: incarnate / floor =" in printed and "recovery: incarnate / floor =" in printed
    assert (
        "until the app is healthy: incarnate" in printed
        and "volume extract, best of 2: incarnate / tar -x =" in printed
    )
    assert "peak memory of incarnate backup of data stored already:" in printed
    assert (
        "peak memory of incarnate backup storing the new data" in printed
        and "peak memory of incarnate recover:" in printed
    )


def test_point_in_time_benchmark_runs_briefly(customer):
    assert customer.install().returncode == 0
    printed = bench("point_in_time.py", str(customer.repo), "--seconds", "8", "--interval", "2", "--losses", "1")
    assert "recovery point: " in printed and "acknowledged at or after it present" in printed
    assert "archiving / baseline median =" in printed
