"""Fixtures for end-to-end tests: the real Docker engine, registry and Prefect server that
scripts/test.sh started, and throw-away customers (git repo, store, stack) per test."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from deployments.run_start import SERVING  # serve says it once every deployment is created
from deployments.stacks import resolve
from incarnate import settings
from incarnate.compose import HOST_STACKS
from incarnate.datasources.helper import ensure_helper
from incarnate.host import Host

INCARNATE = str(Path(sys.executable).with_name("incarnate"))
COMPOSE = str(Path(sys.executable).with_name("docker-compose"))


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", autouse=True)
def real_components():
    """Fail loudly, never skip, when a component the suite drives is not running."""
    problems = []
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        problems.append("Docker engine")
    for name, url in (
        ("registry", f"http://{settings.registry()}/v2/"),
        ("Prefect server", f"{os.environ.get('PREFECT_API_URL', '')}/health"),
    ):
        try:
            urllib.request.urlopen(url, timeout=3).close()
        except (OSError, ValueError):
            problems.append(f"{name} ({url})")
    if not (Path(settings.releases()) / "demo" / "1.0.0" / "publication.json").is_file():
        problems.append(f"demo release store ({Path(settings.releases())})")
    if problems:
        pytest.fail(f"not running or not set up: {', '.join(problems)}; run `bash scripts/test.sh`", pytrace=False)


def left_on_host(stack: str) -> list[str]:
    """What of a stack is on this machine's engine (containers, volumes, networks) and in its stack folder."""
    found = [
        f"{kind} {name}"
        for kind, args in (("container", ["ps", "-a"]), ("volume", ["volume", "ls"]), ("network", ["network", "ls"]))
        for name in subprocess.run(
            ["docker", *args, "-q", "--filter", f"label=com.docker.compose.project={stack}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    ]
    return found + (
        [f"stack folder {settings.stacks_dir() / stack}"] if (settings.stacks_dir() / stack).exists() else []
    )


def in_volume(volume: str, script: str, engine: str | None = None) -> str:
    """What `script` prints, run by sh in incarnate's helper image with the volume at /data (on `engine`)."""
    image = ensure_helper(Host(docker_host=engine))
    command = ["docker", *(["-H", engine] if engine else []), "run", "--rm", "--network", "none", "-v"]
    return subprocess.run(
        [*command, f"{volume}:/data", image, "sh", "-c", script], check=True, capture_output=True, text=True
    ).stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=test", "-c", "user.email=test@localhost", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@dataclass
class Customer:
    """A customer of the demo product: its repo, its backup store, its stack on the local engine."""

    stack: str
    repo: Path
    store: Path
    port: int
    product: str = "demo"
    store_block: str | None = None  # a saved store block instead of the local store directory

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_stack_yaml(self, text: str, message: str = "change stack.yaml") -> None:
        (self.repo / "stack.yaml").write_text(text)
        git(self.repo, "commit", "--quiet", "--allow-empty", "-am", message)

    def stack_yaml(self, release: str = "1.0.0") -> str:
        store = f"block: {self.store_block}" if self.store_block else f"kind: local\n    path: {self.store}"
        return (
            f"stack: {self.stack}\nproduct: {self.product}\nrelease: {release}\nhttp_port: {self.port}\n"
            f"backup:\n  store:\n    {store}\n"
        )

    def backups(self):
        """The stack's backup store as its flows open it (sealed: the key comes from its Prefect Secret block)."""
        from blocks.resolve import backup_store
        from incarnate.repo import load_customer_config

        return backup_store(load_customer_config(str(self.repo)).config)

    def use(self, product: str, store_block: str | None = None) -> None:
        """Switch this customer to another product or store (a commit, as an operator would)."""
        self.product, self.store_block = product, store_block
        self.write_stack_yaml(self.stack_yaml(), f"use {product} with {store_block or 'the local store'}")

    def incarnate(self, *args: str, env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [INCARNATE, *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=900,
            input=input,
        )

    def install(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return self.incarnate("install", str(self.repo), *args, env=env)

    def compose(self, *args: str) -> str:
        workdir = settings.stacks_dir() / self.stack
        return subprocess.run(
            [COMPOSE, "-p", self.stack, "--project-directory", str(workdir), *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def containers(self) -> dict[str, str]:
        """Running containers of the stack: name -> id."""
        out = subprocess.run(
            [
                "docker",
                "ps",
                "--filter",
                f"label=com.docker.compose.project={self.stack}",
                "--format",
                "{{.Names}} {{.ID}}",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return dict(line.split() for line in out.splitlines())

    def remove_stack(self) -> None:
        """The disaster: containers, network and volumes gone."""
        for kind, flag in (("container", "-aq"), ("volume", "-q")):
            ids = subprocess.run(
                [
                    "docker",
                    kind,
                    "ls" if kind == "volume" else "ps",
                    flag,
                    "--filter",
                    f"label=com.docker.compose.project={self.stack}",
                ],
                capture_output=True,
                text=True,
            ).stdout.split()
            if ids:
                subprocess.run(
                    ["docker", kind, "rm", "-f" if kind == "container" else "--force", *ids], capture_output=True
                )
        subprocess.run(["docker", "network", "rm", f"{self.stack}_default"], capture_output=True)

    def remove_from(self, engine: str) -> None:
        """Take the stack down on another engine a test moved it to (its containers and volumes), and the
        files that engine's host keeps of it; a stack left behind would run for the rest of the suite."""
        subprocess.run(
            [COMPOSE, "-p", self.stack, "down", "--volumes"],
            env={**os.environ, "DOCKER_HOST": engine},
            capture_output=True,
        )
        shutil.rmtree(Path(HOST_STACKS) / self.stack, ignore_errors=True)

    def database_tables(self) -> int:
        """Tables in the demo database, 0 once a failed restore emptied it again."""
        return int(
            subprocess.run(
                [
                    "docker",
                    "exec",
                    f"{self.stack}-db-1",
                    "mariadb",
                    "-N",
                    "-e",
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='demo'",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )

    def request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        request = urllib.request.Request(self.url + path, data=body, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def records(self) -> list[dict]:
        return json.loads(self.request("GET", "/records"))


@pytest.fixture
def customer(tmp_path) -> Customer:
    stack = f"t{uuid.uuid4().hex[:8]}"
    repo, store = tmp_path / "repo", tmp_path / "store"
    repo.mkdir()
    store.mkdir()
    subject = Customer(stack=stack, repo=repo, store=store, port=free_port())
    git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / "stack.yaml").write_text(subject.stack_yaml())
    git(repo, "add", "stack.yaml")
    git(repo, "commit", "--quiet", "-m", "pin demo 1.0.0")
    yield subject
    subject.remove_stack()
    shutil.rmtree(settings.stacks_dir() / stack, ignore_errors=True)
    forget_on_prefect_server(stack)
    forget_store_key(store)


def store_key_block(store: Path) -> str | None:
    """The Prefect Secret block that holds the key of a test's local store; None when the store is not encrypted."""
    config = store / "keys" / "config.json"
    return f"incarnate-store-key-{json.loads(config.read_text())['store']}" if config.is_file() else None


def forget_store_key(store: Path) -> None:
    """Delete that block and the vault's note that the store at this path is encrypted (what losing the Prefect
    server does to them)."""
    from incarnate.stores.sealed import location_entry

    names = [store_key_block(store), f"incarnate-store-key-{location_entry(str(store))}"]
    with get_client(sync_client=True) as client:
        for name in filter(None, names):
            try:
                client.delete_block_document(client.read_block_document_by_name(name, "secret").id)
            except ObjectNotFound:
                pass


def forget_on_prefect_server(stack: str) -> None:
    """What the test left on the operator's Prefect server: the stack's place in deployments, its concurrency limits,
    its secrets."""
    from flows.remove import forget_on_server

    forget_on_server(stack)
    with get_client(sync_client=True) as client:
        try:
            client.delete_block_document(client.read_block_document_by_name(f"incarnate-stack-{stack}", "secret").id)
        except ObjectNotFound:
            pass


@dataclass
class Serving:
    process: subprocess.Popen
    backup: object  # the backup deployment that serves the stack, as the server has it
    log: Path


def state_of(run_id: str) -> str:
    """The name of a flow run's state as the Prefect server has it now."""
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state.name


def flow_run_id(output: str) -> str:
    """The flow run `incarnate trigger` started, from the UI link it prints."""
    return output.split("/runs/flow-run/")[1].split()[0]


@contextmanager
def background(command: list[str], log: Path, ready: str, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """A long-running incarnate process (serve, worker), its output in `log`, from the moment it says `ready`
    until the block ends."""
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 60
    try:
        while ready not in log.read_text():
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()[-2000:]
            time.sleep(0.5)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(20)


@contextmanager
def serving(customer: Customer, tmp_path: Path, *options: str, env: dict | None = None) -> Iterator[Serving]:
    """The customer installed, registered (in a registry of this test's own) and `incarnate serve` running for it."""
    env = {
        "INCARNATE_CUSTOMERS": str(tmp_path / "customers.yaml"),
        "INCARNATE_SERVE_NAME": f"serve-{customer.stack}",  # tests serve at once on one Prefect server
        **(env or {}),
    }
    assert customer.install().returncode == 0
    registered = customer.incarnate("register", str(customer.repo), env=env)
    assert registered.returncode == 0, registered.stderr
    log = tmp_path / "serve.log"
    with background([INCARNATE, "serve", *options], log, SERVING, env) as server:
        with get_client(sync_client=True) as client:
            deployment, _ = resolve(client, f"backup/{customer.stack}")
        time.sleep(2)  # the runner polls for its deployments' runs from now on
        yield Serving(server, deployment, log)


@pytest.fixture
def served(customer, tmp_path):
    """`incarnate serve` running for a customer whose nightly backup runs in New York time."""
    customer.write_stack_yaml(
        customer.stack_yaml().replace("backup:", "timezone: America/New_York\nbackup:"), "nightly in New York"
    )
    with serving(customer, tmp_path) as server:
        yield server.backup
