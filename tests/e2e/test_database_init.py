"""A database image whose health check passes while its entrypoint's initialisation server runs, as the official
PostgreSQL image's does: restore waits until the server that stays answers on the target database, instead of
loading into one that does not exist yet or is about to shut down."""

import uuid
from pathlib import Path

import yaml

from tests.e2e.test_publish import publish, release_list

PGDEMO = Path(__file__).resolve().parents[2] / "examples" / "pgdemo" / "releases" / "1.0.0"
# The official image's order: an initialisation server on the default socket with no TCP address (the health check,
# pg_isready on that socket, passes from here on), the database created, init scripts, a stop, the real server.
OFFICIAL_LIKE = """set -eu
bin=/usr/lib/postgresql/15/bin; data=/var/lib/postgresql/data
mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql "$$data"
if [ ! -s "$$data/PG_VERSION" ]; then
  su postgres -c "$$bin/initdb -D $$data -U postgres --auth-local=peer --auth-host=scram-sha-256" >/dev/null
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$$data/pg_hba.conf"
  su postgres -c "$$bin/pg_ctl -D $$data -w -o '-c listen_addresses=' start" >/dev/null
  sleep 8
  su postgres -c "psql -v ON_ERROR_STOP=1 -q" <<SQL
CREATE ROLE "$$POSTGRES_USER" LOGIN PASSWORD '$$POSTGRES_PASSWORD';
CREATE DATABASE "$$POSTGRES_DB" OWNER "$$POSTGRES_USER";
SQL
  sleep 8
  su postgres -c "$$bin/pg_ctl -D $$data -m fast -w stop" >/dev/null
fi
exec su postgres -c "exec $$bin/postgres -D $$data -c listen_addresses='*'"
"""


def official_like_release(target: Path) -> Path:
    """pgdemo 1.0.0 under a product name of its own, its database initialised as the official image does."""
    product = f"pginit{uuid.uuid4().hex[:6]}"
    target.mkdir()
    descriptor = (PGDEMO / "release.yaml").read_text().replace("product: pgdemo", f"product: {product}")
    (target / "release.yaml").write_text(descriptor)
    compose = yaml.safe_load((PGDEMO / "compose.yaml").read_text())
    compose["services"]["db"]["command"] = ["bash", "-c", OFFICIAL_LIKE]
    (target / "compose.yaml").write_text(yaml.safe_dump(compose, sort_keys=False))
    return target


def test_a_restore_waits_for_the_database_server_that_stays_not_the_one_the_image_initialises_with(customer, tmp_path):
    releases = str(tmp_path / "releases")
    folder = official_like_release(tmp_path / "release")
    published = publish(folder, releases)
    assert published.returncode == 0, published.stdout[-3000:] + published.stderr[-3000:]
    product = yaml.safe_load((folder / "release.yaml").read_text())["product"]
    assert product in release_list(releases, product)

    customer.use(product)
    installed = customer.install(env={"INCARNATE_RELEASES": releases})
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    assert "database-pgdemo: loaded" in installed.stdout + installed.stderr
