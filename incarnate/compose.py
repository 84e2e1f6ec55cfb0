"""One stack as a Compose project on a host: its files, and the compose commands run on it."""

import json
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from incarnate.errors import StageError, StoreError, tail
from incarnate.health import HealthWait, compose_filters
from incarnate.host import Host
from incarnate.private import write_private

COMPOSE_FILE = "compose.yaml"
SIZE_FILE = "incarnate.size.yaml"  # the stack's size: limits and environment over compose.yaml
IMAGES_FILE = "incarnate.images.yaml"  # every service's image by the digest it was published with
OVERRIDES = (SIZE_FILE, IMAGES_FILE)  # over compose.yaml, in this order
ENV_FILE = "incarnate.env"
STATE_FILE = "state.json"
# An SSH host keeps its stacks' files itself, so that any machine running a flow (a DevOps laptop, the
# Prefect server's, a worker on the host) finds what runs there; a local host's workdir is already on it.
HOST_STACKS = "/var/lib/incarnate/stacks"
KEPT_ON_HOST = (COMPOSE_FILE, *OVERRIDES, ENV_FILE, STATE_FILE)


NO_ADDRESS_POOL = "non-overlapping IPv4 address pool"


def explained(failed: StageError, host: str) -> StageError:
    """Docker's own words, with what to do where an operator could not guess it."""
    if NO_ADDRESS_POOL not in str(failed):
        return failed
    # Each stack is a Compose project with a network of its own; Docker's default pools hold about 30 networks,
    # so the 30th stack on one engine fails here at 02:00 unless the engine was given more.
    return StageError(
        f"{failed} The engine of host {host} has no address range left for another network (each stack "
        "has one; Docker's default pools hold about 30): give it a larger default-address-pools in its "
        "/etc/docker/daemon.json and restart it (README: Many stacks on one engine), then run again."
    )


@dataclass
class ComposeProject:
    host: Host
    name: str
    workdir: Path

    def write_files(
        self, compose: bytes, variables: dict[str, str], size: dict | None = None, images: dict | None = None
    ) -> None:
        """Lay down the release's compose file, the stack's size and the images pinned by digest over it (each only
        when given) and the variables it needs (its secrets among them: the env file is 0600), replacing older ones."""
        write_private(self.workdir / COMPOSE_FILE, compose)
        for name, override in zip(OVERRIDES, (size, images), strict=True):
            if override:
                write_private(self.workdir / name, yaml.safe_dump(override, sort_keys=True).encode())
            else:
                (self.workdir / name).unlink(missing_ok=True)
        write_private(
            self.workdir / ENV_FILE, "".join(f"{key}={value}\n" for key, value in sorted(variables.items())).encode()
        )

    def command_line(self, *args: str) -> list[str]:
        """`docker compose` with the stack's files, size and env file, as incarnate wrote them, and `args`."""
        files = [COMPOSE_FILE, *(name for name in OVERRIDES if (self.workdir / name).is_file())]
        return [
            *self.host.compose_command(),
            "--project-name",
            self.name,
            "--project-directory",
            str(self.workdir),
            *(arg for name in files for arg in ("--file", str(self.workdir / name))),
            "--env-file",
            str(self.workdir / ENV_FILE),
            *args,
        ]

    def compose(self, *args: str, what: str, timeout: float | None = None, error: type[Exception] = StageError) -> str:
        try:
            return self.host.run(self.command_line(*args), what=what, error=error, timeout=timeout)
        except StageError as failed:
            raise explained(failed, self.host.name) from None

    def host_dir(self) -> str:
        return f"{HOST_STACKS}/{self.name}"

    def save_on_host(self) -> None:
        """Copy the stack's files to an SSH host (each replaced whole: a reader never sees half a file)."""
        shell, folder = self.host.ssh, self.host_dir()
        if shell is None:
            return
        for name in KEPT_ON_HOST:
            path, target = self.workdir / name, shlex.quote(f"{folder}/{name}")
            if path.is_file():
                shell.execute(
                    shell.as_root(
                        f"umask 077 && mkdir -p {shlex.quote(folder)} && cat > {target}.new && mv {target}.new {target}"
                    ),
                    what=f"saving {name} of stack {self.name}",
                    stdin=path.read_bytes(),
                )
            else:  # a size the stack no longer has, an images file a stack deployed before pinning lacks
                shell.execute(
                    shell.as_root(f"rm -f {shlex.quote(f'{folder}/{name}')}"),
                    what=f"removing {name} of stack {self.name}",
                )

    def load_from_host(self) -> None:
        """Take an SSH host's files of the stack as this machine's copy: the host knows what runs on it."""
        shell, folder = self.host.ssh, self.host_dir()
        if shell is None:
            return
        state = shell.execute(
            shell.as_root(f"cat {shlex.quote(f'{folder}/{STATE_FILE}')} 2>/dev/null || true"),
            what="reading the stack's state",
        )
        if not state:
            return  # not deployed there (or deployed before hosts kept their stacks' files)
        write_private(self.workdir / STATE_FILE, state.encode())
        for name in (COMPOSE_FILE, *OVERRIDES, ENV_FILE):
            optional = " 2>/dev/null || true" if name in OVERRIDES else ""
            text = shell.execute(
                shell.as_root(f"cat {shlex.quote(f'{folder}/{name}')}{optional}"),
                what=f"reading {name} of stack {self.name}",
            )
            if text or not optional:
                write_private(self.workdir / name, text.encode())
            else:
                (self.workdir / name).unlink(missing_ok=True)

    def forget(self) -> None:
        """Drop the stack's files, here and on an SSH host: what a scratch stack leaves after its tear-down."""
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.host.ssh:
            self.host.ssh.execute(
                self.host.ssh.as_root(f"rm -rf {shlex.quote(self.host_dir())}"),
                what=f"removing the files of stack {self.name}",
            )

    def has_files(self) -> bool:
        return (self.workdir / COMPOSE_FILE).is_file()

    def variables(self, names: list[str]) -> dict[str, str]:
        """The values the stack's env file gives the variables `names` (those it has)."""
        path, wanted = self.workdir / ENV_FILE, set(names)
        lines = path.read_text().splitlines() if path.is_file() else []
        return {key: value for key, _, value in (line.partition("=") for line in lines) if key in wanted}

    def pull(self, services: list[str] | None = None) -> None:
        # A registry that does not answer is worth retrying; a failing service is not (StageError).
        self.compose(
            "pull", "--quiet", *(services or []), what=f"pulling images of stack {self.name}", error=StoreError
        )

    def up(self, services: list[str] | None = None, timeout: int = 300) -> None:
        """Start services (None: every one; an empty list: none) and wait until each is healthy: incarnate runs
        their health checks itself until they pass (incarnate.health), so a sensible health-check interval does not
        delay a deployment."""
        if services is not None and not services:
            return  # a release without data services: starting all would let the app fill empty volumes before restore
        args = ["up", "--detach", *([] if services else ["--remove-orphans"])]
        try:
            self.compose(*args, *(services or []), what=f"starting stack {self.name}", timeout=timeout + 60)
            HealthWait(self.host, self.name, services).until_healthy(timeout)
        except StageError as error:
            raise StageError(f"{error} Its containers' last log lines: {self.log_tail()}") from None

    def remove_unconfigured(self) -> list[str]:
        """Containers of services the stack's files no longer run (an optional service deactivated) are removed;
        their volumes stay. The services whose containers went."""
        configured = set(
            self.compose("config", "--services", what=f"listing the services of stack {self.name}").split()
        )
        listing = self.host.run(
            [
                "docker",
                "ps",
                "--all",
                *compose_filters(self.name),
                "--format",
                '{{.ID}} {{.Label "com.docker.compose.service"}}',
            ],
            what=f"listing containers of stack {self.name}",
        )
        gone = {
            container: service
            for container, service in (line.split() for line in listing.splitlines() if line.strip())
            if service not in configured
        }
        if gone:
            self.host.run(["docker", "rm", "--force", *gone], what=f"removing containers of stack {self.name}")
        return sorted(set(gone.values()))

    def log_tail(self, lines: int = 3) -> str:
        """The last lines the stack's containers logged: why a service did not become healthy, in the error itself
        (a scratch stack is removed before anyone could read its logs)."""
        try:
            output = self.compose(
                "logs", "--no-color", "--no-log-prefix", "--tail", str(lines), what=f"reading logs of stack {self.name}"
            )
        except StageError:
            return "none could be read"
        return tail(output, lines)

    def stop(self, services: list[str]) -> None:
        self.compose("stop", *services, what=f"stopping {', '.join(services)} of stack {self.name}")

    def down(self, volumes: bool = False) -> None:
        """With `volumes`, the data goes too: only ever after a verified backup of it exists."""
        self.compose("down", *(["--volumes"] if volumes else []), what=f"removing stack {self.name}")

    def services(self) -> list[dict]:
        """The project's containers as Compose reports them (name, service, state, health)."""
        output = self.compose("ps", "--all", "--format", "json", what=f"listing stack {self.name}")
        text = output.strip()
        if not text:
            return []
        if text.startswith("["):
            return json.loads(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def container(self, service: str) -> str:
        """The id of a service's running container (one `docker ps`: `compose ps` took 0.2 s and three processes)."""
        found = self.host.run(
            ["docker", "ps", "--quiet", *compose_filters(self.name, service=service, oneoff="False")],
            what=f"finding service {service} of stack {self.name}",
        ).split()
        if not found:
            raise StageError(f"stack {self.name} on host {self.host.name}: service {service} has no running container.")
        return found[0]

    def volume(self, name: str) -> str | None:
        """The engine's name of a Compose volume of this project, None while it does not exist."""
        output = self.host.run(
            ["docker", "volume", "ls", "--quiet", *compose_filters(self.name, volume=name)],
            what=f"looking up volume {name} of stack {self.name}",
        )
        names = output.split()
        return names[0] if names else None

    def remove_all(self) -> list[str]:
        """Every container, volume and network of the project, found by Compose's label (so also what a killed run
        left without its compose file); what was removed."""
        removed = []
        for kind, listing, removal in (
            ("container", ["ps", "--all", "--quiet"], ["rm", "--force", "--volumes"]),
            ("volume", ["volume", "ls", "--quiet"], ["volume", "rm", "--force"]),
            ("network", ["network", "ls", "--quiet"], ["network", "rm"]),
        ):
            found = self.host.run(
                ["docker", *listing, *compose_filters(self.name)], what=f"listing {kind}s of stack {self.name}"
            ).split()
            if found:
                self.host.run(["docker", *removal, *found], what=f"removing {kind}s of stack {self.name}")
                removed.append(f"{len(found)} {kind}{'s' if len(found) > 1 else ''}")
        return removed

    def ensure_volume(self, name: str) -> str:
        """A project volume, created with Compose's labels when the data services did not need it."""
        existing = self.volume(name)
        if existing:
            return existing
        volume = f"{self.name}_{name}"
        self.host.run(
            [
                "docker",
                "volume",
                "create",
                "--label",
                f"com.docker.compose.project={self.name}",
                "--label",
                f"com.docker.compose.volume={name}",
                volume,
            ],
            what=f"creating volume {volume}",
        )
        return volume
