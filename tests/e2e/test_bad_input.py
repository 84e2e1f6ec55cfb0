"""Bad input gets one sentence naming what and where, a non-zero exit, and nothing is touched."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from incarnate import settings
from incarnate.backup_format import chunk_key, find_snapshot
from incarnate.releases import RELEASE_FILES, file_digests


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda text: text + "relase: 1.1.0\n", "field 'relase' is not a known setting"),
        (lambda text: text.replace("release: 1.0.0\n", ""), "field 'release' is missing"),
        (
            lambda text: text.replace("release: 1.0.0", "release: latest"),
            "field 'release': expected a release version MAJOR.MINOR.PATCH",
        ),
    ],
    ids=["unknown-key", "missing-release", "release-not-a-version"],
)
def test_bad_stack_yaml_exits_2_naming_file_and_field_and_starts_nothing(customer, change, expected):
    customer.write_stack_yaml(change(customer.stack_yaml()))
    result = customer.install()
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: stack.yaml in {customer.repo} at HEAD (")
    assert expected in error
    assert customer.containers() == {}
    assert not (settings.stacks_dir() / customer.stack).exists()


def test_release_missing_from_release_store_is_refused(customer):
    customer.write_stack_yaml(customer.stack_yaml(release="9.9.9"))
    result = customer.install()
    assert result.returncode == 2
    assert "demo 9.9.9 has no release.yaml (releases there: 1.0.0, 1.1.0" in result.stderr


def test_release_whose_images_the_registry_lacks_is_refused_before_anything_running_stops(customer, tmp_path):
    assert customer.install().returncode == 0
    running = customer.containers()
    releases = tmp_path / "releases"
    shutil.copytree(Path(settings.releases()) / "demo" / "1.0.0", releases / "demo" / "1.0.1")
    descriptor = yaml.safe_load((releases / "demo/1.0.1/release.yaml").read_text())
    descriptor.update(release="1.0.1", images={"app": "demo/app:1.0.1", "db": "demo/db:1.0.1"})
    (releases / "demo/1.0.1/release.yaml").write_text(yaml.safe_dump(descriptor))
    publication = json.loads((releases / "demo/1.0.1/publication.json").read_text())  # as if it were published
    publication.update(  # digests the registry never held under these tags
        images={"demo/app:1.0.1": f"sha256:{'a' * 64}", "demo/db:1.0.1": f"sha256:{'b' * 64}"},
        release="1.0.1",
        files=file_digests({name: (releases / "demo/1.0.1" / name).read_bytes() for name in RELEASE_FILES}),
    )
    (releases / "demo/1.0.1/publication.json").write_text(json.dumps(publication))
    customer.write_stack_yaml(customer.stack_yaml(release="1.0.1"), "update to 1.0.1")

    result = customer.install(env={"INCARNATE_RELEASES": str(releases)})
    assert result.returncode == 2
    assert (
        f"error: registry {settings.registry()} no longer holds demo/app:1.0.1 (sha256:{'a' * 64}), demo/db:1.0.1 "
        f"(sha256:{'b' * 64}) as published for demo 1.0.1" in result.stderr
    )
    assert "Nothing was changed." in result.stderr
    assert customer.containers() == running
    assert customer.request("GET", "/health").startswith(b'{"status": "ok", "release": "1.0.0"')


def test_unreachable_docker_engine_says_so_and_how_to_start_it(customer):
    result = customer.install("--docker-host", "unix:///run/incarnate-no-such-engine.sock")
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: Docker engine at unix:///run/incarnate-no-such-engine.sock does not answer")
    assert "start it (`systemctl start docker`" in error


def test_restore_refuses_a_corrupt_artifact_names_it_and_leaves_the_database_empty(customer):
    assert customer.install().returncode == 0
    customer.request("POST", "/records", b'{"title": "precious"}')
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    snapshot = find_snapshot(customer.backups(), customer.stack)
    chunk_id = snapshot.manifest.artifact("database-demo").chunks[-1][0]
    chunk = customer.store / chunk_key(chunk_id)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x55
    chunk.write_bytes(bytes(data))
    verify = customer.incarnate("verify", str(customer.repo))
    assert (
        verify.returncode == 1
        and f"artifact database-demo, chunk {chunk_id}: corrupt (fails authentication)" in verify.stderr
    )
    sampled = customer.incarnate("verify", str(customer.repo), "--sample", "100%")  # every chunk of every snapshot
    assert sampled.returncode == 1 and "are missing or corrupt" in sampled.stderr
    customer.remove_stack()

    result = customer.install()
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert f"snapshot {snapshot.id}, artifact database-demo, chunk {chunk_id}: corrupt (fails authentication)" in error
    assert customer.database_tables() == 0
    assert "app" not in " ".join(customer.containers())
