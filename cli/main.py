"""The `incarnate` command: runs the flows (so every run is in Prefect's history) and reads state.

Every error ends as one sentence on stderr and an exit code: 2 for bad input, 1 otherwise.
"""

import argparse
import atexit
import importlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import NoReturn

from cli import prefect_server
from incarnate import progress, settings
from incarnate.errors import ConfigError, IncarnateError, exit_code


def _without_expected_traceback(record: logging.LogRecord) -> bool:
    """An IncarnateError already says what and where; its traceback only buries that on a terminal."""
    if record.exc_info and isinstance(record.exc_info[1], IncarnateError):
        record.exc_info, record.exc_text = None, None
    return True


def quiet_expected_tracebacks() -> None:
    """Drop tracebacks of operator-facing errors from the console; the Prefect UI keeps them."""
    from prefect.logging.configuration import setup_logging
    from prefect.logging.handlers import PrefectConsoleHandler

    setup_logging()
    for handler in logging.getLogger().handlers:  # the console handler sits on the root logger
        if isinstance(handler, PrefectConsoleHandler):
            handler.addFilter(_without_expected_traceback)


def flow_command(target: str, *params: str) -> Callable[[argparse.Namespace], int]:
    """A command that runs the flow `module:function` with these parameters, named as the arguments are.
    The flow is imported only when its command runs: Prefect's import costs every other command seconds."""

    def handler(args: argparse.Namespace) -> int:
        module, name = target.split(":")
        getattr(importlib.import_module(module), name)(**{param: getattr(args, param) for param in params})
        return 0

    return handler


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"{option} {value!r}: expected NAME=PATH.")
        pairs[name] = path
    return pairs


def cmd_import(args: argparse.Namespace) -> int:
    from flows.import_installation import import_installation

    import_installation(
        repo=args.repo,
        dumps=_pairs(args.dump, "--dump"),
        volumes=_pairs(args.volume, "--volume"),
        ref=args.ref,
        docker_host=args.docker_host,
    )
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from blocks import resolve
    from incarnate import listings
    from incarnate.repo import load_customer_config

    config = load_customer_config(args.repo).config
    lines, warning = listings.incarnations(args.repo, config, resolve.backup_store(config))
    if warning:
        print(warning, file=sys.stderr)
    print("\n".join(lines))
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    if args.pool and args.docker_host:
        raise ConfigError(
            f"register {args.repo}: give --host or --pool, not both: the stack of a work pool runs on the "
            f"host of the pool's worker (`incarnate init --host ADDRESS --pool NAME` installs it there first)."
        )
    return registered(args.repo, args.docker_host, args.pool)


def registered(repo: str, host: str | None, pool: str | None) -> int:
    from incarnate.customers import register, registry_path

    customer = register(repo, host, pool)
    runs = (
        (
            f"in work pool {pool}: run `incarnate worker --pool {pool}` on its host, and restart `incarnate serve` to "
            f"create its deployments there"
        )
        if pool
        else (f"on host {host or 'local'}: restart `incarnate serve` to serve its deployments")
    )
    print(f"registered stack {customer.config.stack} ({repo}) in {registry_path()}, {runs}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Prepare the host, install the stack from its newest backup (nothing if it runs as pinned), register it."""
    from flows.install import install
    from incarnate.customers import check_pool, check_registrable

    check_pool(args.pool)  # before the host is touched: bad input changes nothing
    check_registrable(args.repo)  # a stack name taken by another customer is bad input too
    result = install(repo=args.repo, ref=args.ref, docker_host=args.docker_host, unless_current=True)
    registered(
        args.repo, None if args.pool else args.docker_host, args.pool
    )  # a pool's stack runs on its worker's host
    print(
        f"stack {result['stack']} {'unchanged' if result['unchanged'] else 'installed'}: release {result['release']} "
        f"at {result['url']}"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from deployments.alerts import AlertSettings
    from deployments.serve import main as serve
    from incarnate import settings

    serve(
        AlertSettings.from_environment(args.alerts, args.stale_after),
        settings.max_runs(args.max_runs),
        settings.serve_name(args.name),
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from deployments.alerts import AlertSettings
    from deployments.worker import main as worker
    from incarnate import settings
    from incarnate.customers import check_pool

    return worker(check_pool(args.pool), settings.max_runs(args.max_runs), AlertSettings.from_environment())


def cmd_archive(args: argparse.Namespace) -> int:
    """Ship what the stack's databases wrote since the last round into its store: once, or every
    INCARNATE_ARCHIVE_SECONDS with --follow (what `incarnate serve` does for the stacks it serves)."""
    import threading

    from deployments.archiver import archive_once, run_rounds

    if not args.follow:
        result = archive_once(args.repo, args.docker_host)
        print(result.describe())
        return 0 if result.shipped else 1
    stop = threading.Event()
    try:
        run_rounds(lambda: [(args.repo, args.docker_host)], stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


def cmd_trigger(args: argparse.Namespace) -> int:
    from deployments.trigger import parse_params, trigger

    return 0 if trigger(args.deployment, parse_params(args.param), args.wait) else 1


def stale_after_option(parser: argparse.ArgumentParser, meaning: str) -> None:
    parser.add_argument(
        "--stale-after", default=None, metavar="DURATION", help=f"{meaning} (default INCARNATE_STALE_AFTER or 26h)"
    )


def cmd_fleet(args: argparse.Namespace) -> int:
    """The fleet table; exit 1 when a stack is overdue (its newest backup older than the staleness window)."""
    import os

    from deployments.alerts import parse_duration
    from flows.fleet import fleet_overview

    stale = parse_duration(args.stale_after or os.environ.get("INCARNATE_STALE_AFTER", "26h"), "--stale-after")
    result = fleet_overview(sort=args.sort, nights=args.nights, stale_after_hours=stale.total_seconds() / 3600)
    print("\n".join(result["lines"]))
    return 1 if result["overdue"] else 0


def cmd_status(args: argparse.Namespace) -> int:
    from blocks import resolve
    from incarnate import listings
    from incarnate.repo import load_customer_config
    from incarnate.stages import create_host

    config = load_customer_config(args.repo, args.ref).config
    host = resolve.host(args.docker_host)
    project = create_host.run(host, config.stack)  # without host settings: status only reads
    code, lines = listings.status(config, host, project, lambda: resolve.backup_store(config))
    print("\n".join(lines))
    return code


def _stack_store(args: argparse.Namespace):
    from blocks import resolve
    from incarnate.repo import load_customer_config

    config = load_customer_config(args.repo, args.ref).config
    return config, resolve.backup_store(config)


def cmd_exec(args: argparse.Namespace) -> int:
    """A command in a running service of the stack (`docker compose exec` with the stack's own files), its exit code."""
    from blocks import resolve
    from incarnate.repo import load_customer_config
    from incarnate.stages import create_host

    config = load_customer_config(args.repo).config
    host = resolve.host(args.docker_host)
    project = create_host.run(host, config.stack)
    if not project.has_files():
        raise ConfigError(f"stack {config.stack} is not deployed on host {host.name}; there is nothing to run in.")
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not command:
        raise ConfigError(f"give the command to run in service {args.service}: incarnate exec REPO SERVICE -- COMMAND")
    tty = [] if sys.stdin.isatty() and sys.stdout.isatty() else ["-T"]
    return host.attached(project.command_line("exec", *tty, args.service, *command))


def cmd_secret(args: argparse.Namespace) -> int:
    """One stack secret's value on stdout, from the vault (the operator asked for it: it is printed nowhere else);
    with --set, a secret setting of the release read from stdin into the vault. Either is recorded as an event naming
    who asked and which secret, never the value."""
    import getpass

    from prefect.events import emit_event

    from blocks import resolve
    from incarnate.product_settings import secret_names
    from incarnate.repo import load_customer_config

    config = load_customer_config(args.repo).config
    stack, vault = config.stack, resolve.stack_secrets()
    secrets = vault.load(stack) or {}
    if args.name is None:
        if args.set:
            raise ConfigError("give the name of the secret setting to --set: incarnate secret REPO NAME --set")
        print("\n".join(sorted(secrets)) or f"stack {stack} has no secrets in {vault.where(stack)}")
        return 0
    if args.set:
        settable = secret_names(resolve.release_store().descriptor(config.product, config.release).settings)
        if args.name not in settable:
            raise ConfigError(
                f"{args.name} is not a secret setting of {config.product} {config.release} (its secret settings: "
                f"{', '.join(settable) or 'none'}); generated secrets are never set by hand."
            )
        value = sys.stdin.read().strip("\r\n")
        if not value:
            raise ConfigError(f"no value for {args.name} on stdin; nothing was changed.")
        vault.save(stack, {**secrets, args.name: value})
        print(f"stack {stack}: {args.name} kept in {vault.where(stack)}; `incarnate update {args.repo}` deploys it")
    elif args.name not in secrets:
        raise ConfigError(
            f"stack {stack} has no secret {args.name} in {vault.where(stack)} (it has: "
            f"{', '.join(sorted(secrets)) or 'none'})."
        )
    else:
        print(secrets[args.name])
    emit_event(
        event="incarnate.secret.set" if args.set else "incarnate.secret.read",
        resource={"prefect.resource.id": f"incarnate.stack.{stack}", "prefect.resource.name": stack},
        payload={"secret": args.name, "user": getpass.getuser()},
    )
    return 0


def cmd_backups(args: argparse.Namespace) -> int:
    from incarnate import listings

    lines, readable = listings.snapshots(*_stack_store(args))
    print("\n".join(lines))
    return 0 if readable else 1


def _passphrase() -> str:
    """From the terminal without echo, or the first line of stdin (never an argument: it would show in `ps`)."""
    import getpass

    text = getpass.getpass("recovery passphrase: ") if sys.stdin.isatty() else sys.stdin.readline()
    if not text.strip():
        raise ConfigError("no passphrase given: type it, or pass it as the first line of stdin.")
    return text.strip()


def cmd_key_export(args: argparse.Namespace) -> int:
    config, store = _stack_store(args)
    store_id, passphrase = store.recovery_material(again=args.again)
    print(f"store {store.location} of stack {config.stack}: {store.describe()}")
    print(f"recovery passphrase: {passphrase}")
    print(
        f"Keep it offline (paper, a password manager off this machine). With the store and this passphrase alone, "
        f"`incarnate key import {args.repo}` recreates the key (store id {store_id}) when the Prefect server is lost."
    )
    return 0


def cmd_key_add(args: argparse.Namespace) -> int:
    config, store = _stack_store(args)
    name = store.add_passphrase(_passphrase())
    print(f"store {store.location} of stack {config.stack}: {name} now opens it with that passphrase too")
    return 0


def cmd_key_import(args: argparse.Namespace) -> int:
    config, store = _stack_store(args)
    where = store.import_key(_passphrase())
    print(f"store {store.location} of stack {config.stack}: key recreated in {where}; {store.describe()}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from incarnate import listings
    from incarnate.retention import prune_stack

    config, store = _stack_store(args)
    result = prune_stack(store, args.repo, config.stack, config.backup.retention, dry_run=args.dry_run)
    print("\n".join(listings.pruned(config.stack, result, args.dry_run)))
    return 0


def cmd_release_list(args: argparse.Namespace) -> int:
    from blocks import resolve
    from incarnate import listings

    print("\n".join(listings.releases(resolve.release_store(), args.product)))
    return 0


def cmd_release_withdraw(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from blocks import resolve
    from incarnate import __version__
    from incarnate.releases import Withdrawal

    try:
        wanted = Withdrawal(
            reason=args.reason, withdrawn_at=datetime.now(UTC).isoformat(timespec="seconds"), tool_version=__version__
        )
    except ValidationError:
        raise ConfigError(f"--reason {args.reason!r}: say why in at least 10 characters.") from None
    releases = resolve.release_store()
    done = releases.withdraw(args.product, args.release, wanted)
    said = "withdrawn" if done == wanted else f"was already withdrawn on {done.withdrawn_at}"
    print(f"{args.product} {args.release} {said} in {releases.location} ({done.reason})")
    return 0


def add_release_commands(commands: argparse._SubParsersAction) -> None:
    """`incarnate release publish DIR` (for a vendor's CI) and `incarnate release list [PRODUCT]`."""
    release = commands.add_parser(
        "release", help="publish releases into the release store (INCARNATE_RELEASES), list them"
    )
    actions = release.add_subparsers(dest="action", required=True)
    publish = actions.add_parser(
        "publish",
        help="check a release folder (release.yaml, compose.yaml) and its images, make its vanilla backup by "
        "running it in a scratch stack, write it all create-only into the release store",
        description="Exit 0 when published or already published with this content, 2 for bad input (invalid files, "
        "missing images, other content under a published release), 1 for any other failure.",
    )
    publish.add_argument("folder", help="the release folder: release.yaml and compose.yaml")
    publish.add_argument(
        "--host",
        "--docker-host",
        dest="docker_host",
        default=None,
        metavar="ADDRESS",
        help="engine the scratch stack runs on (default: this machine); as for the other commands",
    )
    publish.set_defaults(handler=flow_command("flows.publish:publish_release", "folder", "docker_host"))
    withdraw = actions.add_parser(
        "withdraw",
        help="take a published release back: no new stack starts on it and no stack is updated to it (stacks that "
        "run it are still backed up and recovered)",
    )
    withdraw.add_argument("product")
    withdraw.add_argument("release")
    withdraw.add_argument("--reason", required=True, help="why, shown by release list and every refusal")
    withdraw.set_defaults(handler=cmd_release_withdraw)
    listing = actions.add_parser("list", help="published releases with their schema versions and vanilla sizes")
    listing.add_argument("product", nargs="?", default=None, help="only this product")
    listing.set_defaults(handler=cmd_release_list)


def customer_repo(value: str) -> str:
    """A repo path as an absolute path (a run's parameters and the registration must name it wherever they are read);
    a git URL as given."""
    return os.path.abspath(value) if "://" not in value and Path(value).exists() else value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="incarnate", description="Deploy, back up and recover Compose stacks: every deployment is a restore."
    )
    commands = root.add_subparsers(dest="command", required=True)

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help: str, ref: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("repo", type=customer_repo, help="customer repo: git URL or path")
        if ref:
            sub.add_argument("--ref", default="HEAD", help="branch, tag or commit of the customer repo (default HEAD)")
        sub.add_argument(
            "--host",
            "--docker-host",
            dest="docker_host",
            default=None,
            metavar="ADDRESS",
            help="container host: ssh://USER@HOST[:PORT], incarnate-ssh-host/BLOCK, or a Docker engine "
            "address (default: this machine)",
        )
        sub.add_argument(
            "--identity",
            default=None,
            metavar="FILE",
            help="private key for ssh:// hosts (default ~/.ssh/id_ed25519, id_ecdsa or id_rsa)",
        )
        sub.add_argument(
            "--known-hosts",
            default=None,
            metavar="FILE",
            help="pinned host keys for ssh:// hosts (default ~/.ssh/known_hosts)",
        )
        sub.set_defaults(handler=handler)
        return sub

    pool_help = (
        "run the stack's flows on the workers of this Prefect work pool (one pool per container host, "
        "`incarnate worker --pool NAME` on that host) instead of in `incarnate serve`"
    )
    command(
        "init",
        cmd_init,
        "prepare a host (this machine or --host ssh://USER@HOST[:PORT]), install the stack "
        "from its newest backup, register it; changes nothing on a stack that already runs as pinned",
    ).add_argument(
        "--pool", default=None, metavar="NAME", help=pool_help + "; --host then only says where this first install goes"
    )
    install = command(
        "install",
        flow_command("flows.install:install", "repo", "ref", "docker_host", "snapshot", "adopt_data", "at"),
        "install or re-deploy a stack from its newest backup",
    )
    install.add_argument("--snapshot", default=None, help="restore this snapshot id instead of the newest")
    add_at(install)
    install.add_argument(
        "--adopt-data",
        action="store_true",
        help="keep the stack's data found on the host although no deployment recorded it (its folder was lost); "
        "the release migrates it as it is",
    )
    command(
        "update",
        flow_command("flows.update:update", "repo", "ref", "docker_host"),
        "update a running stack to the release its repo pins; rolls back on failure",
    )
    recover = command(
        "recover",
        flow_command("flows.install:disaster_recovery", "repo", "docker_host", "snapshot", "ref", "at"),
        "disaster recovery: bring the stack up on --docker-host from its newest backup and archived logs",
    )
    recover.add_argument("--snapshot", default=None, help="restore this snapshot id instead of the newest")
    add_at(recover)
    command(
        "rollback",
        flow_command("flows.rollback:rollback", "repo", "incarnation", "docker_host"),
        "deploy an earlier incarnation with its own backup",
        ref=False,
    ).add_argument("incarnation", help="incarnation as `incarnate history` lists it")
    drill = command(
        "drill",
        flow_command("flows.drill:restore_drill", "repo", "docker_host", "snapshot", "at"),
        "restore the newest backup (and archived logs) into a scratch stack, check it, remove it",
        ref=False,
    )
    drill.add_argument("--snapshot", default=None, help="drill this snapshot id instead of the newest")
    add_at(drill)
    imports = command("import", cmd_import, "seed an empty store from an old installation, then install")
    imports.add_argument(
        "--dump", action="append", default=[], metavar="DATABASE=FILE", help="plain SQL dump of a database"
    )
    imports.add_argument(
        "--volume", action="append", default=[], metavar="VOLUME=DIR", help="directory whose files become a volume"
    )
    command("history", cmd_history, "list the stack's incarnations (deployments) from the customer repo", ref=False)
    command(
        "backup",
        flow_command("flows.backup:backup_stack", "repo", "docker_host"),
        "back up a running stack into its store",
        ref=False,
    )
    command(
        "register", cmd_register, "register a customer repo: its stack gets deployments and a nightly backup", ref=False
    ).add_argument("--pool", default=None, metavar="NAME", help=pool_help)
    serve = commands.add_parser(
        "serve",
        help="serve every registered stack's deployments (one long-running process) "
        "and keep the alert automations on the Prefect server",
    )
    serve.add_argument(
        "--alerts",
        default=None,
        metavar="TYPE/NAME",
        help="saved Prefect notification block told of failed or crashed runs and stale backups, e.g. "
        "custom-webhook/ops (default INCARNATE_ALERTS; none: failures show only in the UI)",
    )
    stale_after_option(serve, "alert when a stack has had no completed backup for this long")
    serve.add_argument(
        "--max-runs",
        default=None,
        metavar="N",
        help="flow runs at once; the others wait their turn (default INCARNATE_MAX_RUNS or the cores, at least 2)",
    )
    serve.add_argument(
        "--name",
        default=None,
        metavar="NAME",
        help="the name of this machine's deployments, backup/NAME, ... (default INCARNATE_SERVE_NAME or the host name; "
        "machines serving stacks on one Prefect server need names of their own)",
    )
    serve.set_defaults(handler=cmd_serve)
    worker = commands.add_parser(
        "worker",
        help="run the flows of the stacks registered with --pool NAME, on this "
        "host (one long-running process per container host)",
    )
    worker.add_argument(
        "--pool", required=True, metavar="NAME", help="the work pool this host's stacks are registered in"
    )
    worker.add_argument(
        "--max-runs",
        default=None,
        metavar="N",
        help="flow runs at once; the others wait their turn (default INCARNATE_MAX_RUNS or the cores, at least 2)",
    )
    worker.set_defaults(handler=cmd_worker)
    fleet = commands.add_parser(
        "fleet",
        help="every served stack in one table (host, release, newest backup's size and age, last drill and verify, "
        "encryption, lock, alerts), also kept as the Prefect artifact `fleet`; exit 1 when a stack is overdue",
    )
    fleet.add_argument(
        "--sort",
        default="stack",
        metavar="COLUMN",
        help="order by stack, host, release, size, backup (oldest first), drill, verify or alerts (default stack)",
    )
    fleet.add_argument(
        "--nights", type=int, default=14, metavar="N", help="nights of backup sizes and drill times drawn (default 14)"
    )
    stale_after_option(fleet, "a stack whose newest backup is older is overdue")
    fleet.set_defaults(handler=cmd_fleet)
    trigger = commands.add_parser("trigger", help="start a run of a deployment (for CI); --wait follows it to the end")
    trigger.add_argument(
        "deployment", help="FLOW/STACK (the stack's run of that flow, e.g. backup/demo) or FLOW/DEPLOYMENT"
    )
    trigger.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a flow parameter (JSON or text)"
    )
    trigger.add_argument("--wait", action="store_true", help="wait for the run; exit 0 only if it completed")
    trigger.set_defaults(handler=cmd_trigger)
    add_release_commands(commands)
    remove = command(
        "remove",
        flow_command("flows.remove:remove_stack", "repo", "confirm", "docker_host", "discard_data"),
        "remove a stack from its host after a last backup (its backups and secrets stay; install brings it back)",
        ref=False,
    )
    remove.add_argument("--confirm", default="", metavar="STACK", help="the stack's name: removing deletes its volumes")
    remove.add_argument(
        "--discard-data",
        action="store_true",
        help="remove without the last backup (a failed first install, or data nobody needs)",
    )
    command("status", cmd_status, "what runs, which release, which backup it came from")
    command("backups", cmd_backups, "list a stack's snapshots")
    archive = command(
        "archive",
        cmd_archive,
        "ship what the stack's databases wrote since the last round into its store (serve does it every few seconds)",
        ref=False,
    )
    archive.add_argument(
        "--follow", action="store_true", help="go on, a round every INCARNATE_ARCHIVE_SECONDS (default 10), until ^C"
    )
    execute = command("exec", cmd_exec, "run a command in a running service of the stack (an admin task)", ref=False)
    execute.add_argument("service", help="the Compose service to run it in")
    execute.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND", help="-- and the command with arguments")
    secret = commands.add_parser("secret", help="print one stack secret from the vault (e.g. an admin password)")
    secret.add_argument("repo", type=customer_repo, help="customer repo: git URL or path")
    secret.add_argument(
        "name",
        nargs="?",
        help="the secret's name, as release.yaml's secrets or secret settings list it; none: list "
        "the names the vault holds (no value)",
    )
    secret.add_argument(
        "--set", action="store_true", help="keep a secret setting of the release, read from stdin, in the vault"
    )
    secret.set_defaults(handler=cmd_secret)
    verify = command(
        "verify",
        flow_command("flows.verify:verify_stack", "repo", "snapshot", "every", "sample"),
        "re-read a snapshot's every chunk and check it (default: the newest); exit 1 when one is bad",
        ref=False,
    )
    verify.add_argument("--snapshot", default=None, help="snapshot id to verify")
    verify.add_argument("--all", dest="every", action="store_true", help="verify every snapshot of the stack")
    verify.add_argument(
        "--sample",
        default=None,
        metavar="PERCENT|BYTES",
        help="re-read a random share of the chunks of every snapshot of the stack: 10%% or 500M",
    )
    key = commands.add_parser(
        "key",
        help="the recovery passphrase of a stack's encrypted store: print it once, or "
        "recreate the key from it when the Prefect server is lost",
    )
    actions = key.add_subparsers(dest="action", required=True)
    for action, handler, text in (
        ("export", cmd_key_export, "print the store's recovery passphrase (once; --again for another time)"),
        (
            "add",
            cmd_key_add,
            "add a passphrase of your own (a new key file; the others keep working), read from "
            "the terminal or the first line of stdin",
        ),
        (
            "import",
            cmd_key_import,
            "recreate the store's key (a Prefect Secret block) from its recovery passphrase, "
            "read from the terminal or the first line of stdin; a wrong one writes nothing",
        ),
    ):
        sub = actions.add_parser(action, help=text, description=text)
        sub.add_argument("repo", type=customer_repo, help="customer repo: git URL or path")
        sub.add_argument("--ref", default="HEAD", help="branch, tag or commit of the customer repo (default HEAD)")
        sub.set_defaults(handler=handler)
        if action == "export":
            sub.add_argument("--again", action="store_true", help="print it although it was printed before")
    command(
        "prune", cmd_prune, "apply stack.yaml's retention: forget old snapshots, delete unreferenced chunks"
    ).add_argument("--dry-run", action="store_true", help="show what would go, change nothing")
    return root


def add_at(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--at",
        default=None,
        metavar="TIME",
        help="recover to this time (ISO 8601 with a zone, e.g. 2026-12-03T14:05:00Z): the newest backup taken at or "
        "before it, its databases' archived logs replayed up to that second; default `latest`: everything archived",
    )


def main(argv: Sequence[str] | None = None) -> tuple[int, str]:
    """Run one command; return its exit code and the sentence to print last on stderr ("" when none)."""
    args = parser().parse_args(argv)
    for option, variable in (("identity", "INCARNATE_SSH_KEY"), ("known_hosts", "INCARNATE_KNOWN_HOSTS")):
        if getattr(args, option, None):
            os.environ[variable] = str(Path(getattr(args, option)).absolute())  # flows read it in this process
    try:
        settings.check()
        prefect_server.connect()  # before Prefect is first imported: it reads its settings then
        quiet_expected_tracebacks()
        with progress.reporting(progress.TerminalSink(sys.stderr)):
            return args.handler(args), ""
    except IncarnateError as error:
        return exit_code(error), f"error: {error}"
    except KeyboardInterrupt:
        return 130, "error: interrupted; run `incarnate status` to see where the stack is."


DRAIN_PATIENCE = 4.0  # seconds of draining Prefect's workers at exit before "Still processing items" is worth saying
QUEUE_SERVICES = ("EventsWorker", "APILogWorker")  # Prefect names these loggers after the services' classes


class QuietUntilSlow(logging.Filter):
    """Prefect's queue services warn "Still processing items: N items remaining..." the moment they are stopped with
    anything queued (the first check after the stop always logs), so every command that loaded a block ended its
    output with it. It passes once draining has taken DRAIN_PATIENCE seconds: then it says why the command waits."""

    def __init__(self, since: float) -> None:
        super().__init__()
        self.since = since

    def filter(self, record: logging.LogRecord) -> bool:
        early = time.monotonic() - self.since < DRAIN_PATIENCE
        return not (early and record.getMessage().startswith("Still processing items"))


def run() -> NoReturn:
    """The `incarnate` command: main(), then out without the interpreter's teardown. Once a flow ran, tearing down
    Prefect's modules, clients and loops took 0.6-0.7 s of every command, and nothing is left to do by then but
    what the teardown runs first: Prefect's log and event workers send what they hold (threading's exit hooks,
    where Prefect registers them), then the atexit handlers. So run those, flush, and leave.

    An error is printed after them: they may print too (a slow server's "EventsWorker - Still processing items",
    "Stopping temporary server"), and the last line must be the sentence that says what failed and where."""
    # A line is written when it is said, also to a log file or the journal (serve, a worker, archive --follow):
    # Python buffers what goes to anything but a terminal, and serve's lines came a buffer's worth late.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    code, last_words = main()
    quiet = QuietUntilSlow(time.monotonic())
    for name in QUEUE_SERVICES:
        logging.getLogger(name).addFilter(quiet)
    threading._shutdown()  # type: ignore[attr-defined] # the interpreter's own first step of exiting
    atexit._run_exitfuncs()
    if last_words:
        print(last_words, file=sys.stderr)
    with suppress(BrokenPipeError):  # `incarnate backups | head`: the reader has gone, as at any exit
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
