"""The last line an operator (or a script's `tail -1`) reads from a failed command is incarnate's one-sentence error.

Prefect's log and event workers send what they hold at exit (cli.main.run runs their exit hooks), and on a slow
machine they print there too ("EventsWorker - Still processing items: 4 items remaining..."; a temporary server's
"Stopping temporary server"). CI once read that warning where the error should have been. This stands a late
printing exit hook in for them and runs the real command."""

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LATE_HOOKS = textwrap.dedent("""
    import atexit, sys, threading
    from cli.main import run
    threading._register_atexit(lambda: print("01:00:00.000 | WARNING | EventsWorker - Still processing items",
    file=sys.stderr))
    atexit.register(lambda: print("01:00:00.000 | INFO | prefect - Stopping temporary server", file=sys.stderr))
    sys.argv = ["incarnate", *sys.argv[1:]]
    run()
""")


def test_the_error_is_the_last_line_after_whatever_prefect_prints_at_exit(tmp_path):
    """The error here: no Prefect server answers (an address nothing listens on, no wait), so no server is needed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/api"
    result = subprocess.run(
        [sys.executable, "-c", LATE_HOOKS, "status", str(tmp_path / "repo")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "INCARNATE_HOME": str(tmp_path / "home"),
            "PREFECT_API_URL": dead,
            "INCARNATE_PREFECT_WAIT_SECONDS": "0",
        },
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Still processing items" in result.stderr and "Stopping temporary server" in result.stderr
    assert lines[-1].startswith(f"error: no Prefect server answers at {dead} "), lines


def test_prefect_s_still_processing_warning_is_said_only_once_draining_is_slow():
    from cli.main import DRAIN_PATIENCE, QuietUntilSlow

    def record(message: str):
        import logging

        return logging.LogRecord("EventsWorker", logging.WARNING, __file__, 1, message, None, None)

    now = time.monotonic()
    assert not QuietUntilSlow(now).filter(record("Still processing items: 1 items remaining..."))
    assert QuietUntilSlow(now - DRAIN_PATIENCE).filter(record("Still processing items: 1 items remaining..."))
    assert QuietUntilSlow(now).filter(record("Service 'EventsWorker' failed to process item"))
