"""The demo product's app: records in MariaDB (or PostgreSQL, for the PostgreSQL test
product), uploaded files in a volume, /health with release and schema version. On start it
brings the schema up to its release."""

import json
import os
import re
import sys
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RELEASE = os.environ["APP_RELEASE"]
FILES = Path(os.environ.get("FILES_DIR", "/data/files"))
MIGRATIONS = Path(__file__).with_name("migrations")
SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
POSTGRES = os.environ.get("DB_ENGINE", "mariadb") == "postgresql"

if POSTGRES:
    import psycopg2 as driver
else:
    import pymysql as driver


@contextmanager
def connect():
    settings = {
        "host": os.environ.get("DB_HOST", "db"),
        "user": os.environ.get("DB_USER", "demo"),
        "password": os.environ["DB_PASSWORD"],
    }
    if POSTGRES:
        connection = driver.connect(dbname=os.environ.get("DB_NAME", "demo"), **settings)
        connection.autocommit = True
    else:
        connection = driver.connect(
            database=os.environ.get("DB_NAME", "demo"), autocommit=True, charset="utf8mb4", **settings
        )
    try:
        yield connection
    finally:
        connection.close()


def wait_for_database(timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with connect():
                return
        except driver.OperationalError as error:
            if time.monotonic() > deadline:
                raise SystemExit(f"database not reachable after {timeout:.0f} s: {error}") from None
            time.sleep(1)


def schema_version(cursor) -> int:
    cursor.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'schema_version'")
    if cursor.fetchone()[0] == 0:
        return 0
    cursor.execute("SELECT MAX(version) FROM schema_version")
    return cursor.fetchone()[0] or 0


def migrate(connection) -> int:
    """Apply every migration newer than the database; each file records its own version."""
    with connection.cursor() as cursor:
        current = schema_version(cursor)
        for path in sorted(MIGRATIONS.glob("*.sql")):
            number = int(path.name.split("_", 1)[0])
            if number <= current:
                continue
            print(f"migrating schema {current} -> {number} ({path.name})", flush=True)
            for statement in path.read_text().split(";\n"):
                if statement.strip():
                    cursor.execute(statement)
            current = schema_version(cursor)
        return current


class Handler(BaseHTTPRequestHandler):
    server_version = "demo-app"

    def reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header(
            "Content-Type", "application/json" if not isinstance(body, bytes) else "application/octet-stream"
        )
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            with connect() as connection, connection.cursor() as cursor:
                self.reply(200, {"status": "ok", "release": RELEASE, "schema_version": schema_version(cursor)})
        elif self.path == "/records":
            with connect() as connection, connection.cursor() as cursor:
                cursor.execute("SELECT * FROM records ORDER BY id")
                names = [column[0] for column in cursor.description]
                rows = [
                    {
                        name: (value if isinstance(value, (int, str, type(None))) else str(value))
                        for name, value in zip(names, row, strict=True)
                    }
                    for row in cursor.fetchall()
                ]
                self.reply(200, rows)
        elif self.path.startswith("/files/") and SAFE_NAME.match(self.path[7:]):
            target = FILES / self.path[7:]
            self.reply(200, target.read_bytes()) if target.is_file() else self.reply(404, {"error": "no such file"})
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != "/records":
            return self.reply(404, {"error": "not found"})
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        title = body["title"]
        with connect() as connection, connection.cursor() as cursor:
            # Schema 2 (migration 002) gave every record a slug, as that migration derives it from the title.
            columns, values = (
                (("title", "slug"), (title, title.strip().lower().replace(" ", "-")))
                if schema_version(cursor) >= 2
                else (("title",), (title,))
            )
            statement = f"INSERT INTO records ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
            if POSTGRES:
                cursor.execute(statement + " RETURNING id", values)
                new_id = cursor.fetchone()[0]
            else:
                cursor.execute(statement, values)
                new_id = cursor.lastrowid
            self.reply(201, {"id": new_id})

    def do_PUT(self) -> None:
        name = self.path[7:]
        if not (self.path.startswith("/files/") and SAFE_NAME.match(name)):
            return self.reply(400, {"error": "bad file name"})
        data = self.rfile.read(int(self.headers["Content-Length"]))
        FILES.mkdir(parents=True, exist_ok=True)
        partial = FILES / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(FILES / name)
        self.reply(201, {"name": name, "size": len(data)})

    def log_message(self, format: str, *args) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main() -> None:
    wait_for_database()
    with connect() as connection:
        version = migrate(connection)
    print(f"demo app {RELEASE} serving with schema version {version}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()


if __name__ == "__main__":
    main()
