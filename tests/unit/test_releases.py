"""The release contract without an engine: release.yaml's schema, its agreement with compose.yaml (as Compose
prints it), and what the release store says when the same release is published again."""

import pytest
import yaml

from incarnate.errors import ConfigError, IntegrityError, ReleaseError
from incarnate.publish import PROBE_PORT, ReleaseFolder, compose_problems, publication, refuse_changed
from incarnate.releases import ReleaseStore, digest_overrides, parse_descriptor, published_digests
from incarnate.stores.local import LocalStore

REGISTRY = "registry.example:5000"
RELEASE = {
    "product": "shop",
    "release": "2.1.0",
    "schema_version": 7,
    "images": {"web": "shop/web:2.1.0", "db": "shop/db:2.1.0"},
    "data_services": ["db"],
    "databases": [{"name": "shop", "service": "db", "engine": "postgresql"}],
    "volumes": [{"name": "uploads"}],
    "health": {"service": "web", "path": "/healthz"},
}
COMPOSE = {  # what `docker compose config --format json` prints for the matching compose.yaml
    "services": {
        "web": {
            "image": f"{REGISTRY}/shop/web:2.1.0",
            "ports": [{"target": 8000, "published": PROBE_PORT}],
            "volumes": [{"type": "volume", "source": "uploads", "target": "/srv/uploads"}],
        },
        "db": {
            "image": f"{REGISTRY}/shop/db:2.1.0",
            "volumes": [{"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"}],
        },
    },
    "volumes": {"uploads": {}, "pgdata": {}},
}


def descriptor(changes: dict | str | None = None, **more):
    if isinstance(changes, str):
        return parse_descriptor(changes, "release.yaml")
    text = yaml.safe_dump({**RELEASE, **(changes or {}), **more}, sort_keys=False)
    return parse_descriptor(text, "release.yaml")


def test_the_example_release_is_valid_and_agrees_with_its_compose_file():
    assert compose_problems(descriptor(), COMPOSE, REGISTRY) == []


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"health": {"service": "web", "path": None}}, "health.answer `release` needs health.path"),
        ({"health": {"service": "web", "path": "healthz"}}, "health.path must start with /"),
        ({"health": {"service": "api"}}, "health.service api: not a service under images (web, db)"),
        ({"data_services": ["database"]}, "data_services database: not a service under images"),
        ({"schema_check": {"service": "db", "command": []}}, "schema_check.command"),
        ({"product": "Shop"}, "expected a lowercase name"),
        ({"release": "2.1"}, "expected a release version MAJOR.MINOR.PATCH"),
        ({"images": {}}, "images"),
        ("not: [valid", "not valid YAML"),
    ],
)
def test_release_yaml_mistakes_are_refused_naming_the_field(changes, expected):
    with pytest.raises(ReleaseError) as refused:
        descriptor(changes)
    assert expected in str(refused.value)


def test_an_app_that_reports_no_release_may_rely_on_a_status_answer_and_a_schema_command():
    release = descriptor(
        health={"service": "web", "path": "/", "answer": "status"},
        schema_check={"service": "db", "command": ["psql", "-tAc", "SELECT 7"]},
    )
    assert release.schema_check.command[0] == "psql"
    assert descriptor(health={"service": "web", "path": None, "answer": "status"}).health.path is None


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda c: c["services"].pop("db"), "service db is under images in release.yaml but not in compose.yaml"),
        (lambda c: c["services"].update(cache={"image": "x"}), "service cache is in compose.yaml but not under images"),
        (
            lambda c: c["services"]["web"].update(image=f"{REGISTRY}/shop/web:latest"),
            "service web runs image 'registry.example:5000/shop/web:latest', release.yaml says "
            "${INCARNATE_REGISTRY}/shop/web:2.1.0",
        ),
        (
            lambda c: c["services"]["web"]["volumes"].append({"type": "volume", "source": "sessions", "target": "/s"}),
            "service web mounts volume sessions, which release.yaml neither backs up (volumes) nor lets go "
            "(ephemeral_volumes)",
        ),
        (
            lambda c: c["services"]["web"].pop("ports"),
            "release.yaml asks /healthz on ${HTTP_PORT}, but no service publishes ${HTTP_PORT}",
        ),
        (
            lambda c: c["volumes"].pop("uploads"),
            "volume uploads is in release.yaml but not under volumes in compose.yaml",
        ),
    ],
)
def test_compose_file_that_disagrees_with_release_yaml_is_named(change, expected):
    model = yaml.safe_load(yaml.safe_dump(COMPOSE))
    change(model)
    assert expected in "; ".join(compose_problems(descriptor(), model, REGISTRY))


def test_an_ephemeral_volume_is_allowed_and_a_bind_mount_is_not_a_volume():
    model = yaml.safe_load(yaml.safe_dump(COMPOSE))
    model["volumes"]["cache"] = {}
    model["services"]["web"]["volumes"] += [
        {"type": "volume", "source": "cache", "target": "/cache"},
        {"type": "bind", "source": "/etc/shop", "target": "/etc/shop"},
    ]
    assert compose_problems(descriptor(ephemeral_volumes=["cache"]), model, REGISTRY) == []


def folder(tmp_path, **changes) -> ReleaseFolder:
    release = descriptor(**changes)
    files = {"release.yaml": yaml.safe_dump({**RELEASE, **changes}).encode(), "compose.yaml": b"services: {}\n"}
    return ReleaseFolder(tmp_path, release, files)


def test_publishing_the_same_content_again_is_recognised_and_other_content_is_refused_naming_it(tmp_path):
    releases = ReleaseStore(LocalStore(tmp_path / "store"))
    (tmp_path / "store").mkdir()
    published = folder(tmp_path)
    digests = {"shop/web:2.1.0": "sha256:aaa", "shop/db:2.1.0": "sha256:bbb"}
    assert refuse_changed(releases, published, digests) is None  # not published yet
    releases.add("shop", "2.1.0", published.files)
    releases.record(publication(published, digests, "shop/2.1.0/vanilla-x", 123))

    assert refuse_changed(releases, published, digests).vanilla_bytes == 123
    assert [record.release for record in releases.publications("shop")] == ["2.1.0"]
    assert [record.product for record in releases.publications()] == ["shop"]

    with pytest.raises(ReleaseError) as refused:
        refuse_changed(releases, folder(tmp_path, schema_version=8), {**digests, "shop/db:2.1.0": "sha256:ccc"})
    message = str(refused.value)
    assert (
        "shop 2.1.0 is published with other content (release.yaml differs; image shop/db:2.1.0 is sha256:ccc in "
        "the registry now, sha256:bbb when published)" in message
    )
    assert refused.value.exit_code == 2


def test_a_release_store_is_an_absolute_path_or_a_saved_block(monkeypatch, tmp_path):
    from blocks.resolve import release_store

    monkeypatch.setenv("INCARNATE_RELEASES", str(tmp_path / "releases"))
    assert release_store().location == str(tmp_path / "releases")
    assert (tmp_path / "releases").stat().st_mode & 0o777 == 0o700
    monkeypatch.setenv("INCARNATE_RELEASES", "releases")
    with pytest.raises(ConfigError, match="INCARNATE_RELEASES 'releases': expected BLOCK-TYPE/NAME"):
        release_store()


def test_a_stack_chooses_only_optional_services_and_sizes_the_release_defines():
    release = descriptor(optional_services=["web"], sizes={"S": {"web": {"cpus": 0.5}}, "M": {"web": {"memory": "1g"}}})
    release.refuse_unknown(["web"], "M", "stack.yaml")
    with pytest.raises(
        ConfigError,
        match=r"stack.yaml: service search is not an optional service of shop 2.1.0 \(its optional services: web\).",
    ):
        release.refuse_unknown(["search"], None, "stack.yaml")
    with pytest.raises(ConfigError, match=r"size XL is not defined by shop 2.1.0 \(its sizes: S, M\)."):
        release.refuse_unknown([], "XL", "stack.yaml")
    assert release.default_size == "S"
    assert release.size_overrides("M") == {"services": {"web": {"mem_limit": "1g"}}}


def test_a_view_without_an_optional_service_leaves_out_its_data_and_says_which():
    release = descriptor(optional_services=["web"], volumes=[{"name": "uploads", "service": "web"}])
    view = release.activated([])
    assert list(view.images) == ["db"] and view.volumes == [] and view.dormant_artifacts == {"volume-uploads"}
    assert release.activated(["web"]).dormant_artifacts == frozenset()


def test_bad_secret_names_are_refused():
    with pytest.raises(
        ReleaseError, match="expected secret names of lowercase letters, digits and underscores, got 'DB-Pass'"
    ):
        descriptor(secrets=["DB-Pass"])


def test_an_optional_service_needs_its_profile_and_its_volumes_name_it():
    release = descriptor(
        images={**RELEASE["images"], "search": "shop/search:2.1.0"},
        optional_services=["search"],
        volumes=[{"name": "uploads"}, {"name": "index"}],
    )
    model = yaml.safe_load(yaml.safe_dump(COMPOSE))
    model["services"]["search"] = {
        "image": f"{REGISTRY}/shop/search:2.1.0",
        "volumes": [{"type": "volume", "source": "index", "target": "/index"}],
    }
    model["volumes"]["index"] = {}
    problems = "; ".join(compose_problems(release, model, REGISTRY))
    assert "service search has profiles [], expected ['search']" in problems
    assert "volume index of optional service search needs `service: search` in release.yaml" in problems
    model["services"]["search"]["profiles"] = ["search"]
    fixed = descriptor(
        images={**RELEASE["images"], "search": "shop/search:2.1.0"},
        optional_services=["search"],
        volumes=[{"name": "uploads"}, {"name": "index", "service": "search"}],
    )
    assert compose_problems(fixed, model, REGISTRY) == []


def published_store(tmp_path, name: str = "store") -> tuple[ReleaseStore, ReleaseFolder]:
    (tmp_path / name).mkdir()
    releases = ReleaseStore(LocalStore(tmp_path / name))
    published = folder(tmp_path)
    releases.add("shop", "2.1.0", published.files)
    releases.record(publication(published, {"shop/web:2.1.0": "sha256:aaa"}, "shop/2.1.0/vanilla-x", 123))
    return releases, published


def test_only_a_published_release_deploys_and_only_as_it_was_published(tmp_path):
    releases, published = published_store(tmp_path)
    assert releases.descriptor("shop", "2.1.0").release == "2.1.0"
    releases.add("shop", "2.2.0", published.files)  # a release folder copied in by hand: no publication record
    with pytest.raises(ReleaseError, match="2.2.0 has no publication record, so its files cannot be checked"):
        releases.descriptor("shop", "2.2.0")
    (tmp_path / "store/shop/2.1.0/compose.yaml").write_bytes(b"services: {evil: {privileged: true}}\n")
    with pytest.raises(IntegrityError, match="compose.yaml is not the file that was published"):
        releases.files("shop", "2.1.0")


def test_a_customer_store_s_copy_is_checked_against_the_publication(tmp_path):
    from incarnate.releases import customer_releases, keep_checked_copy

    releases, _ = published_store(tmp_path)
    (tmp_path / "customer").mkdir()
    planted = customer_releases(LocalStore(tmp_path / "customer"))
    planted.add("shop", "2.1.0", {"compose.yaml": b"services: {evil: {privileged: true, volumes: ['/:/host']}}\n"})
    with pytest.raises(IntegrityError, match="compose.yaml is not the published file"):
        keep_checked_copy(releases, planted, "shop", "2.1.0")
    assert planted.publication("shop", "2.1.0") is None

    (tmp_path / "clean").mkdir()
    copy = customer_releases(LocalStore(tmp_path / "clean"))
    keep_checked_copy(releases, copy, "shop", "2.1.0")
    assert copy.files("shop", "2.1.0") == releases.files("shop", "2.1.0")
    (tmp_path / "clean/releases/shop/2.1.0/compose.yaml").write_bytes(b"services: {}\n# changed\n")
    with pytest.raises(IntegrityError, match="is not the file that was published"):
        copy.checked_file("shop", "2.1.0", "compose.yaml")


def test_an_encrypted_customer_store_s_publication_record_cannot_be_planted(tmp_path):
    from incarnate.releases import customer_releases
    from incarnate.stores.sealed import SealedStore
    from tests.memory_vault import MemoryVault

    releases, _ = published_store(tmp_path)
    (tmp_path / "customer").mkdir()
    keys = MemoryVault()
    store = SealedStore(LocalStore(tmp_path / "customer"), lambda: keys)
    store.put("backups/acme/x/manifest.json", b"{}")  # the store is encrypted from its first write on
    raw = LocalStore(tmp_path / "customer")
    raw.put("releases/shop/2.1.0/publication.json", releases.store.get("shop/2.1.0/publication.json"))
    with pytest.raises(IntegrityError, match="publication.json is corrupt"):
        customer_releases(store).publication("shop", "2.1.0")


def test_a_copy_written_before_copies_carried_their_record_gets_it_checked(tmp_path):
    from incarnate.releases import customer_releases
    from incarnate.stages.fetch_backup import record_release_copy

    releases, published = published_store(tmp_path)
    (tmp_path / "customer").mkdir()
    store = LocalStore(tmp_path / "customer")
    customer_releases(store).add("shop", "2.1.0", published.files)  # as an earlier version copied it: no record
    record_release_copy(store, "shop", "2.1.0", lambda: releases)
    assert customer_releases(store).publication("shop", "2.1.0") == releases.publication("shop", "2.1.0")
    record_release_copy(store, "shop", "2.1.0", lambda: pytest.fail("the release store is not needed any more"))


def test_a_stack_runs_each_image_by_the_digest_it_was_published_with(tmp_path):
    web, db = f"sha256:{'a' * 64}", f"sha256:{'b' * 64}"
    record = publication(folder(tmp_path), {"shop/web:2.1.0": web, "shop/db:2.1.0": db}, "shop/2.1.0/vanilla-x", 1)
    release = descriptor()
    digests = published_digests(release, record)
    assert digest_overrides(release, REGISTRY, digests) == {
        "services": {"web": {"image": f"{REGISTRY}/shop/web@{web}"}, "db": {"image": f"{REGISTRY}/shop/db@{db}"}}
    }


@pytest.mark.parametrize("recorded", [{}, {"shop/web:2.1.0": "unknown"}, {"shop/web:2.1.0": "sha256:abc"}])
def test_a_publication_without_a_full_digest_for_an_image_cannot_be_deployed(tmp_path, recorded):
    record = publication(folder(tmp_path), {"shop/db:2.1.0": f"sha256:{'b' * 64}", **recorded}, "shop/x", 1)
    with pytest.raises(ReleaseError, match=r"^the publication record of shop 2.1.0 has no image digest for shop/web"):
        published_digests(descriptor(), record)
