"""Build the demo products offline and publish them: images into the registry, releases into the store.

Idempotent: an image is built only when its inputs changed, pushed only when built or
missing from the registry; a release is republished only when its source files changed.

    python examples/demo/build.py            # images, release store, demo customer repo
"""

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from incarnate import settings
from incarnate.releases import ReleaseStore, image_present, parse_descriptor
from incarnate.backup_format import FORMAT, SnapshotWriter
from incarnate.stores.local import LocalStore
from incarnate.datasources.volume import toolbox_image

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent
BASE_IMAGE = "incarnate/base:bookworm"
BASE_PACKAGES = "mariadb-server,mariadb-client,postgresql,python3,python3-pymysql,python3-psycopg2,tar,ca-certificates"
# The products built here: the demo (MariaDB), and a PostgreSQL test product with the same app.
PRODUCTS = {"demo": HERE / "app" / "migrations", "pgdemo": EXAMPLES / "pgdemo" / "migrations"}
SOURCE_HASH = ".source-sha256"


def say(message: str) -> None:
    print(f"  demo: {message}", flush=True)


def docker(*args: str) -> str:
    result = subprocess.run(["docker", *args], text=True, capture_output=True)
    if result.returncode != 0:
        raise SystemExit(f"error: docker {args[0]} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def image_label(image: str) -> str | None:
    result = subprocess.run(["docker", "image", "inspect", "--format", '{{index .Config.Labels "incarnate.inputs"}}', image],
                            capture_output=True, text=True)
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
        subprocess.run(["mmdebstrap", "--quiet", "--variant=apt", f"--include={BASE_PACKAGES}", "bookworm", str(rootfs)], check=True)
        docker("import", "--change", f"LABEL incarnate.inputs={inputs}", "--change", 'CMD ["bash"]', str(rootfs), BASE_IMAGE)
    return inputs, True


def build_image(tag: str, context: Path, base_inputs: str, **build_args: str) -> bool:
    """Build when the context, the arguments or the base changed; True when it built."""
    files = sorted(path for path in context.rglob("*") if path.is_file())
    inputs = digest(base_inputs, *(f"{key}={value}" for key, value in sorted(build_args.items())),
                    *(f"{path.relative_to(context)}" for path in files), *(path.read_bytes() for path in files))
    if image_label(tag) == inputs:
        return False
    say(f"building {tag}")
    args = [arg for key, value in build_args.items() for arg in ("--build-arg", f"{key}={value}")]
    docker("build", "--quiet", "--label", f"incarnate.inputs={inputs}", "--build-arg", f"BASE={BASE_IMAGE}", *args, "-t", tag, str(context))
    return True


def push(tag: str, built: bool, registry: str) -> None:
    if built or not image_present(registry, tag.removeprefix(f"{registry}/")):
        say(f"pushing {tag}")
        docker("push", "--quiet", tag)


def migrations_up_to(product: str, schema_version: int) -> list[Path]:
    return [path for path in sorted(PRODUCTS[product].glob("*.sql")) if int(path.name.split("_")[0]) <= schema_version]


def app_context(scratch: Path, product: str, schema_version: int) -> Path:
    """The app's build context for one release: its code and the migrations up to its schema."""
    context = scratch / f"{product}-app-{schema_version}"
    (context / "migrations").mkdir(parents=True)
    for name in ("Dockerfile", "app.py"):
        shutil.copy(HERE / "app" / name, context / name)
    for migration in migrations_up_to(product, schema_version):
        shutil.copy(migration, context / "migrations" / migration.name)
    return context


def vanilla_sql(product: str, engine: str, database: str, schema_version: int) -> bytes:
    """The database of an empty installation: the release's own migrations, applied in order.
    A MariaDB dump names its database (as `mariadb-dump --databases` does); on PostgreSQL the
    tables must belong to the database's owner (the app's role), as pg_dump's OWNER TO lines do."""
    header = {
        "mariadb": f"CREATE DATABASE IF NOT EXISTS `{database}`;\nUSE `{database}`;\n",
        "postgresql": "DO $$ BEGIN EXECUTE format('SET ROLE %I', (SELECT pg_get_userbyid(datdba) FROM pg_database "
                      "WHERE datname = current_database())); END $$;\n",
    }[engine]
    return header.encode() + b"".join(path.read_bytes() for path in migrations_up_to(product, schema_version))


def empty_tar() -> bytes:
    buffer = io.BytesIO()
    tarfile.open(fileobj=buffer, mode="w").close()
    return buffer.getvalue()


def publish_release(releases: ReleaseStore, release_dir: Path) -> None:
    """Release files and the vanilla backup, in the backup format, into the release store."""
    descriptor = parse_descriptor((release_dir / "release.yaml").read_text(), str(release_dir / "release.yaml"))
    product, release = descriptor.product, descriptor.release
    sources = [release_dir / "release.yaml", release_dir / "compose.yaml", *migrations_up_to(product, descriptor.schema_version)]
    inputs = digest(f"format {FORMAT}", Path(__file__).read_bytes(), *(path.read_bytes() for path in sources))
    target = releases.store.root / product / release
    if (target / SOURCE_HASH).is_file() and (target / SOURCE_HASH).read_text() == inputs:
        say(f"release {product} {release} published")
        return
    say(f"publishing release {product} {release}")
    shutil.rmtree(target, ignore_errors=True)  # the demo's sources changed: its release is rebuilt
    releases.add(product, release, {"release.yaml": sources[0].read_bytes(), "compose.yaml": sources[1].read_bytes()})
    with SnapshotWriter(releases.store, releases.vanilla_prefix(product, release)) as writer:
        for spec in descriptor.databases:
            writer.add(f"database-{spec.name}", "database", spec.name, spec.engine,
                       io.BytesIO(vanilla_sql(product, spec.engine, spec.name, descriptor.schema_version)))
        for spec in descriptor.volumes:
            writer.add(f"volume-{spec.name}", "volume", spec.name, None, io.BytesIO(empty_tar()))
        writer.commit(stack=product, product=product, release=release, schema_version=descriptor.schema_version,
                      config_commit=None, origin="vanilla")
    (target / SOURCE_HASH).write_text(inputs)


def build_and_publish(registry: str, release_root: Path) -> None:
    base_inputs, base_built = build_base()
    toolbox = toolbox_image(registry)
    docker("tag", BASE_IMAGE, toolbox)
    push(toolbox, base_built, registry)
    releases = ReleaseStore(LocalStore(release_root))
    release_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for product in PRODUCTS:
            for release_dir in sorted((EXAMPLES / product / "releases").iterdir()):
                descriptor = parse_descriptor((release_dir / "release.yaml").read_text(), str(release_dir / "release.yaml"))
                release = descriptor.release
                db_tag = f"{registry}/{product}/db:{release}"
                push(db_tag, build_image(db_tag, EXAMPLES / product / "db", base_inputs), registry)
                app_tag = f"{registry}/{product}/app:{release}"
                context = app_context(Path(scratch), product, descriptor.schema_version)
                push(app_tag, build_image(app_tag, context, base_inputs, RELEASE=release), registry)
                publish_release(releases, release_dir)


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
        f"stack: demo\nproduct: demo\nrelease: 1.0.0\nhttp_port: 8080\nbackup:\n  store:\n    kind: local\n    path: {backups}\n"
    )
    for args in (["init", "--quiet", "--initial-branch=main"], ["add", "stack.yaml"],
                 ["-c", "user.name=incarnate", "-c", "user.email=incarnate@localhost", "commit", "--quiet", "-m", "Pin demo release 1.0.0"]):
        subprocess.run(["git", "-C", str(path), *args], check=True)


def main() -> int:
    build_and_publish(settings.registry(), settings.release_store_path())
    create_customer_repo(settings.home() / "customers" / "demo", settings.home() / "backups")
    return 0


if __name__ == "__main__":
    sys.exit(main())
