"""Finding the one Prefect server every command, serve, worker, flow run and bench reports to.

Everything incarnate keeps in Prefect (a new stack's generated secrets, a new store's key, the run history) must
reach the operator's server. Prefect, given no API address, starts a temporary server whose database is deleted
when the process ends: a store key written there is lost, and the store's data with it. So ephemeral mode is
switched off, and a command that cannot reach the server stops before it changes anything.

Prefect reads its settings when it is first imported: connect() runs before that.
"""

import http.client
import os
import ssl
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from incarnate import settings
from incarnate.errors import ConfigError, IncarnateError

# Both of Prefect's names for the setting: a caller's exported PREFECT_SERVER_ALLOW_EPHEMERAL_MODE=true must not win.
EPHEMERAL_SETTINGS = ("PREFECT_SERVER_EPHEMERAL_ENABLED", "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE")
HEALTH_TIMEOUT = 5.0  # one try; a server that stalls longer is tried again until the deadline
LONGEST_PAUSE = 5.0
TRUE = ("1", "true", "t", "yes", "y", "on")
LOOPBACK = ("127.0.0.1", "localhost", "::1")  # what Prefect's settings take for true


class ServerUnreachable(IncarnateError):
    """No Prefect server answered by the deadline; nothing was changed."""


def api_url() -> str:
    """The configured API address (PREFECT_API_URL), else the local server set-up starts (port PREFECT_PORT, 4200)."""
    url = os.environ.get("PREFECT_API_URL") or f"http://127.0.0.1:{os.environ.get('PREFECT_PORT') or 4200}/api"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"PREFECT_API_URL={url!r}: expected the address of a Prefect server's API, such as "
            f"http://127.0.0.1:4200/api."
        )
    return url.rstrip("/")


def tls_context() -> ssl.SSLContext:
    """The server's certificate checked as Prefect's client will check it: not at all with
    PREFECT_API_TLS_INSECURE_SKIP_VERIFY, against PREFECT_API_SSL_CERT_FILE (a private CA) when set, else the
    system's CAs."""
    context = ssl.create_default_context(cafile=os.environ.get("PREFECT_API_SSL_CERT_FILE") or None)
    if os.environ.get("PREFECT_API_TLS_INSECURE_SKIP_VERIFY", "").strip().lower() in TRUE:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def _health(url: str, timeout: float) -> str:
    """Empty when the server answers its health check, else what went wrong, in a few words."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout, context=tls_context()):
            return ""
    except (OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error  # urllib wraps the socket's error
        return (isinstance(reason, OSError) and reason.strerror) or str(reason) or type(reason).__name__


def wait_for_server(url: str, wait: float) -> None:
    """Return once the server at url answers; retry with growing pauses until `wait` seconds have passed."""
    deadline = time.monotonic() + wait
    pause, said = 0.5, False
    while problem := _health(url, max(0.1, min(HEALTH_TIMEOUT, deadline - time.monotonic()))):
        left = deadline - time.monotonic()
        if left <= 0:
            raise ServerUnreachable(
                f"no Prefect server answers at {url} ({problem}, waited {wait:.0f} s): start it with `bash "
                f"scripts/services.sh`, or point PREFECT_API_URL at yours (INCARNATE_PREFECT_WAIT_SECONDS waits "
                f"longer); nothing was changed."
            )
        if not said:
            print(f"waiting up to {wait:.0f} s for the Prefect server at {url} ({problem})", file=sys.stderr)
            said = True
        time.sleep(min(pause, left))
        pause = min(pause * 2, LONGEST_PAUSE)


def listener_uids(port: int, tables: list[str]) -> set[int]:
    """The owners (uids) of every socket listening on `port` in /proc/net/tcp-style tables, whatever its address."""
    owners = set()
    for table in tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 7 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                owners.add(int(fields[7]))
    return owners


def _kernel_tables() -> list[str]:
    tables = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            tables.append(Path(name).read_text())
        except OSError:
            pass
    return tables


def refuse_squatter(url: str, auth: Path) -> None:
    """A loopback server gets the password only when root, or the owner of the password file, listens there: while
    the real server is down, any local user could listen on its port and would receive it with the first request.
    (A remote server is verified by TLS instead.) Reading the kernel's socket table takes well under a millisecond."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in LOOPBACK or not os.environ.get("PREFECT_API_AUTH_STRING"):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    allowed = {0, auth.stat().st_uid if auth.exists() else os.getuid()}
    owners = listener_uids(port, _kernel_tables())
    if not owners or owners - allowed:
        found = ", ".join(f"uid {uid}" for uid in sorted(owners - allowed)) or "no listener this process can see"
        raise ServerUnreachable(
            f"the Prefect server at {url} is not the one set-up started: the port is held by {found}, not by root or "
            f"the owner of {auth} (a local user may be listening while the real server is down); the password was not "
            f"sent and nothing was changed. Stop that process and start the server with `bash scripts/services.sh`."
        )


def connect() -> str:
    """Point this process and its children at the one Prefect server, with the password set-up keeps for it
    (INCARNATE_HOME/prefect-api-auth) unless PREFECT_API_AUTH_STRING is set; wait for it to answer. Returns its
    address. Raises ServerUnreachable (exit 1) when none answers within INCARNATE_PREFECT_WAIT_SECONDS."""
    wanted = dict.fromkeys(EPHEMERAL_SETTINGS, "false")
    auth = settings.home() / "prefect-api-auth"
    if not os.environ.get("PREFECT_API_AUTH_STRING") and os.access(auth, os.R_OK):
        wanted["PREFECT_API_AUTH_STRING"] = auth.read_text().strip()
    url = wanted["PREFECT_API_URL"] = api_url()
    if "prefect" in sys.modules and any(os.environ.get(name) != value for name, value in wanted.items()):
        # Prefect has read its settings already: these would not count, and it could start a temporary server.
        raise RuntimeError("cli.prefect_server.connect() must run before prefect is first imported")
    os.environ.update(wanted)
    wait_for_server(url, settings.prefect_wait_seconds())
    refuse_squatter(url, auth)
    return url
