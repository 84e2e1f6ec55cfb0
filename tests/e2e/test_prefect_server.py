"""incarnate never runs on a temporary Prefect server: a command finds the one server (PREFECT_API_URL, else the
local one set-up starts), waits for a slow one, and stops with one sentence, before it changes anything, when
none answers. On a temporary server a new stack's secrets and a new store's key would be written to a database
that is deleted when the command ends."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from tests.e2e.conftest import INCARNATE, Customer, flow_run_id, free_port, left_on_host

ROOT = Path(__file__).resolve().parents[2]
TEMPORARY = "temporary server"  # what Prefect prints when it starts one


def without_server(how: str) -> dict[str, str]:
    """An environment in which no Prefect server answers: the configured address, or (PREFECT_API_URL unset) the
    local server's port, is one nothing listens on. A short wait keeps the test quick."""
    env = {**os.environ, "INCARNATE_PREFECT_WAIT_SECONDS": "2"}
    dead = f"http://127.0.0.1:{free_port()}/api"
    if how == "configured":
        env["PREFECT_API_URL"] = dead
    else:
        env.pop("PREFECT_API_URL", None)
        env["PREFECT_PORT"] = dead.split(":")[2].removesuffix("/api")
    return env


def left_behind(customer: Customer) -> list[str]:
    """What a refused command must not have made: containers, volumes, networks, the stack's folder, store objects."""
    found = left_on_host(customer.stack)
    found += [f"store object {path}" for path in customer.store.rglob("*")]
    return found


@pytest.mark.parametrize(
    "how, command",
    [
        ("local", ["install"]),
        ("local", ["update"]),
        ("local", ["backup"]),
        ("local", ["key", "export"]),
        ("configured", ["install"]),
        ("configured", ["key", "export"]),
    ],
)
def test_a_command_without_a_prefect_server_stops_before_changing_anything(customer, how, command):
    env = without_server(how)
    started = time.monotonic()
    done = subprocess.run(
        [INCARNATE, *command, str(customer.repo)], env=env, capture_output=True, text=True, timeout=120
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert TEMPORARY not in output, output[-3000:]
    last = done.stderr.splitlines()[-1]
    address = env.get("PREFECT_API_URL") or f"http://127.0.0.1:{env['PREFECT_PORT']}/api"
    assert last.startswith(f"error: no Prefect server answers at {address} ") and "scripts/services.sh" in last, last
    assert "nothing was changed" in last, last
    assert time.monotonic() - started < 60
    assert left_behind(customer) == []


def prefect_server_group() -> int:
    """The process group of the Prefect server set-up started (it runs in a session of its own)."""
    port = os.environ["PREFECT_API_URL"].split(":")[2].split("/")[0]
    pid = subprocess.run(
        ["pgrep", "-of", f"prefect server start --host 127.0.0.1 --port {port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    return os.getpgid(int(pid))


def test_a_command_waits_for_a_slow_server_and_its_run_is_in_the_history(customer):
    """The server stopped (SIGSTOP) for 5 s while the command starts, as a server busy at 02:00 answers late: the
    command waits, then runs against the real server, so its run is in the operator's history."""
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}  # the local server, found
    group = prefect_server_group()
    os.killpg(group, signal.SIGSTOP)
    resume = threading.Timer(5, os.killpg, (group, signal.SIGCONT))
    try:
        resume.start()
        done = subprocess.run(
            [INCARNATE, "release", "publish", str(ROOT / "examples" / "demo" / "releases" / "1.0.0")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        resume.join()
        os.killpg(group, signal.SIGCONT)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert TEMPORARY not in output, output[-3000:]
    run_id = flow_run_id(output)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    assert [run.state.type.value for run in runs] == ["COMPLETED"]


SQUATTER = """
import http.server, json, sys
class Answer(http.server.BaseHTTPRequestHandler):
    def answer(self):
        print(json.dumps({"path": self.path, "authorization": self.headers.get("Authorization")}), flush=True)
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(b"{}")
    do_GET = do_POST = do_PATCH = answer
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Answer).serve_forever()
"""


def test_a_local_user_listening_on_the_server_s_port_never_receives_the_password(customer):
    """While the real server is down, an unprivileged local user listens on a loopback port the client is pointed at
    and answers like a server: the command refuses before it sends any request with the password."""
    port = free_port()
    squatter = subprocess.Popen(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", SQUATTER, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/api/health"]).returncode == 0:
            assert time.monotonic() < deadline and squatter.poll() is None
            time.sleep(0.2)
        env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
        done = subprocess.run([INCARNATE, "install", str(customer.repo)], env=env, capture_output=True, text=True)
    finally:
        squatter.kill()
    seen = squatter.communicate()[0]
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    last = done.stderr.splitlines()[-1]
    assert last.startswith(f"error: the Prefect server at http://127.0.0.1:{port}/api is not the one set-up started: ")
    assert "held by uid 65534, not by root" in last and "the password was not sent" in last, last
    requests = [json.loads(line) for line in seen.splitlines()]
    assert requests and all(request["authorization"] is None for request in requests), requests
    assert left_behind(customer) == []
