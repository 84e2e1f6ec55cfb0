"""Build the example products' images offline and push them into the registry; create the demo customer repo.
Their releases are published by set-up with `incarnate release publish`, as a vendor's CI does.

Idempotent: an image is built only when its inputs changed, pushed only when built or missing
from the registry.

    python examples/demo/build.py            # images, demo customer repo
"""

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from incarnate import settings
from incarnate.registry import Registry
from incarnate.releases import parse_descriptor

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent
BASE_IMAGE = "incarnate/base:bookworm"
# One root filesystem for every example image (they share its layers): the databases, the demo app's Python,
# DokuWiki and MediaWiki under Apache for the off-the-shelf examples, tini as an init.
BASE_PACKAGES = (
    "mariadb-server,mariadb-client,mariadb-backup,postgresql,python3,python3-pymysql,python3-psycopg2,tar,ca-certificates,"
    "dokuwiki,mediawiki,php-mysql,apache2,libapache2-mod-php,tini"
)
# The migrations of the example products built from the demo app: the demo (MariaDB), pgdemo (PostgreSQL).
MIGRATIONS = {"demo": HERE / "app" / "migrations", "pgdemo": EXAMPLES / "pgdemo" / "migrations"}


def say(message: str) -> None:
    print(f"  demo: {message}", flush=True)


def docker(*args: str) -> str:
    result = subprocess.run(["docker", *args], text=True, capture_output=True)
    if result.returncode != 0:
        raise SystemExit(f"error: docker {args[0]} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def image_label(image: str) -> str | None:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", '{{index .Config.Labels "incarnate.inputs"}}', image],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def digest(*parts: bytes | str) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode() if isinstance(part, str) else part)
        hasher.update(b"\0")
    return hasher.hexdigest()[:16]


def build_base() -> tuple[str, bool]:
    """A Debian root filesystem from the package archive (no image registry is needed); (inputs, built)."""
    inputs = digest(BASE_PACKAGES)
    if image_label(BASE_IMAGE) == inputs:
        say(f"{BASE_IMAGE} present")
        return inputs, False
    say(f"building {BASE_IMAGE} with mmdebstrap (about a minute)")
    with tempfile.TemporaryDirectory() as scratch:
        rootfs = Path(scratch) / "rootfs.tar"
        subprocess.run(
            ["mmdebstrap", "--quiet", "--variant=apt", f"--include={BASE_PACKAGES}", "bookworm", str(rootfs)],
            check=True,
        )
        docker(
            "import",
            "--change",
            f"LABEL incarnate.inputs={inputs}",
            "--change",
            'CMD ["bash"]',
            str(rootfs),
            BASE_IMAGE,
        )
    return inputs, True


def build_image(tag: str, context: Path, base_inputs: str, **build_args: str) -> bool:
    """Build when the context, the arguments or the base changed; True when it built."""
    files = sorted(path for path in context.rglob("*") if path.is_file())
    inputs = digest(
        base_inputs,
        *(f"{key}={value}" for key, value in sorted(build_args.items())),
        *(f"{path.relative_to(context)}" for path in files),
        *(path.read_bytes() for path in files),
    )
    if image_label(tag) == inputs:
        return False
    say(f"building {tag}")
    args = [arg for key, value in build_args.items() for arg in ("--build-arg", f"{key}={value}")]
    # No network: the RUN steps are offline, and a second engine started with `--bridge none` may have removed docker0.
    docker(
        "build",
        "--quiet",
        "--network",
        "none",
        "--label",
        f"incarnate.inputs={inputs}",
        "--build-arg",
        f"BASE={BASE_IMAGE}",
        *args,
        "-t",
        tag,
        str(context),
    )
    return True


def push(tag: str, built: bool, registry: str) -> None:
    if built or Registry(registry).digest(tag.removeprefix(f"{registry}/")) is None:
        say(f"pushing {tag}")
        docker("push", "--quiet", tag)


def migrations_up_to(product: str, schema_version: int) -> list[Path]:
    return [
        path for path in sorted(MIGRATIONS[product].glob("*.sql")) if int(path.name.split("_")[0]) <= schema_version
    ]


def app_context(scratch: Path, product: str, schema_version: int) -> Path:
    """The app's build context for one release: its code and the migrations up to its schema."""
    context = scratch / f"{product}-app-{schema_version}"
    (context / "migrations").mkdir(parents=True)
    for name in ("Dockerfile", "app.py"):
        shutil.copy(HERE / "app" / name, context / name)
    for migration in migrations_up_to(product, schema_version):
        shutil.copy(migration, context / "migrations" / migration.name)
    return context


def mediawiki_context(scratch: Path) -> Path:
    """MediaWiki's build context: its own files and the Apache entrypoint it shares with the DokuWiki example."""
    context = scratch / "mediawiki-wiki"
    if not context.is_dir():
        shutil.copytree(EXAMPLES / "mediawiki" / "image", context)
        shutil.copy(EXAMPLES / "wiki" / "image" / "entrypoint.sh", context / "entrypoint.sh")
    return context


def image_contexts(
    product: str, release: str, schema_version: int, scratch: Path
) -> dict[str, tuple[Path, dict[str, str]]]:
    """service -> (build context, build arguments) of one release of an example product."""
    if product == "wiki":
        return {"wiki": (EXAMPLES / "wiki" / "image", {"RELEASE": release})}
    if product == "mediawiki":
        return {
            "db": (HERE / "db", {}),
            "wiki": (mediawiki_context(scratch), {"RELEASE": release}),
        }
    return {
        "db": (EXAMPLES / product / "db", {}),
        "app": (app_context(scratch, product, schema_version), {"RELEASE": release}),
    }


def forget_rebuilt_release(product: str, release: str) -> None:
    """An image of a release changed under its published tag: only on a development machine's local release
    store, the release is dropped so set-up publishes it anew (a real release store refuses the change)."""
    folder = Path(settings.releases()) / product / release
    if settings.releases().startswith("/") and folder.is_dir():
        say(f"dropping {product} {release} from the local release store {settings.releases()}: its images were rebuilt")
        shutil.rmtree(folder)


def build_images(registry: str) -> None:
    base_inputs, _ = build_base()
    with tempfile.TemporaryDirectory() as scratch:
        for release_dir in sorted(EXAMPLES.glob("*/releases/*/")):
            descriptor = parse_descriptor((release_dir / "release.yaml").read_text(), str(release_dir / "release.yaml"))
            contexts = image_contexts(descriptor.product, descriptor.release, descriptor.schema_version, Path(scratch))
            rebuilt = False
            for service, (context, build_args) in contexts.items():
                tag = f"{registry}/{descriptor.images[service]}"
                built = build_image(tag, context, base_inputs, **build_args)
                push(tag, built, registry)
                rebuilt |= built
            if rebuilt:
                forget_rebuilt_release(descriptor.product, descriptor.release)


def create_customer_repo(path: Path, backups: Path) -> None:
    """The demo customer: a git repo whose stack.yaml pins release 1.0.0."""
    if (path / ".git").is_dir():
        say(f"customer repo {path} present")
        return
    say(f"creating customer repo {path}")
    path.mkdir(parents=True, exist_ok=True)
    backups.mkdir(parents=True, exist_ok=True)
    (path / "stack.yaml").write_text(
        "# The demo customer's stack: change `release` and commit to update it.\n"
        f"stack: demo\nproduct: demo\nrelease: 1.0.0\nhttp_port: 8080\nbackup:\n  store:\n    kind: local\n    path: "
        f"{backups}\n"
    )
    for args in (
        ["init", "--quiet", "--initial-branch=main"],
        # an identity of the repo's own: the README's tour commits to it on machines that have none
        ["config", "user.name", "demo operator"],
        ["config", "user.email", "operator@demo.localhost"],
        ["add", "stack.yaml"],
        ["commit", "--quiet", "-m", "Pin demo release 1.0.0"],
    ):
        subprocess.run(["git", "-C", str(path), *args], check=True)


def main() -> int:
    build_images(settings.registry())
    create_customer_repo(settings.home() / "customers" / "demo", settings.home() / "backups")
    return 0


if __name__ == "__main__":
    sys.exit(main())
