"""A product whose database health check lies: pgdemo 1.0.0 under a name of its own, its database initialised the way
the official PostgreSQL image does it. Shared by bench/lying_health.py and tests/e2e/test_database_init.py."""

import uuid
from pathlib import Path

import yaml

PGDEMO = Path(__file__).resolve().parents[1] / "examples" / "pgdemo" / "releases" / "1.0.0"
# The official image's order: an initialisation server on the default socket with no TCP address (the health check,
# pg_isready on that socket, passes from here on), the database created, init scripts, a stop, the real server.
OFFICIAL_LIKE = """set -eu
bin=/usr/lib/postgresql/15/bin; data=/var/lib/postgresql/data
mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql "$$data"
if [ ! -s "$$data/PG_VERSION" ]; then
  su postgres -c "$$bin/initdb -D $$data -U postgres --auth-local=peer --auth-host=scram-sha-256" >/dev/null
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$$data/pg_hba.conf"
  su postgres -c "$$bin/pg_ctl -D $$data -w -o '-c listen_addresses=' start" >/dev/null
  sleep ${INIT_PAUSE}
  su postgres -c "psql -v ON_ERROR_STOP=1 -q" <<SQL
CREATE ROLE "$$POSTGRES_USER" LOGIN PASSWORD '$$POSTGRES_PASSWORD';
CREATE DATABASE "$$POSTGRES_DB" OWNER "$$POSTGRES_USER";
SQL
  sleep ${INIT_PAUSE}
  su postgres -c "$$bin/pg_ctl -D $$data -m fast -w stop" >/dev/null
fi
exec su postgres -c "exec $$bin/postgres -D $$data -c listen_addresses='*'"
"""


def official_like_release(target: Path, init_pause: int = 8) -> tuple[Path, str]:
    """The release folder at `target` and its product name; each pause of its initialisation is `init_pause` s."""
    product = f"pginit{uuid.uuid4().hex[:6]}"
    target.mkdir()
    descriptor = (PGDEMO / "release.yaml").read_text().replace("product: pgdemo", f"product: {product}")
    (target / "release.yaml").write_text(descriptor)
    compose = yaml.safe_load((PGDEMO / "compose.yaml").read_text())
    compose["services"]["db"]["command"] = ["bash", "-c", OFFICIAL_LIKE.replace("${INIT_PAUSE}", str(init_pause))]
    (target / "compose.yaml").write_text(yaml.safe_dump(compose, sort_keys=False))
    return target, product
