"""Which blobs of a listing with versions are hidden (their current version deleted) and which version to read:
the pure half of reading an Azure container with version-level immutability (Azurite keeps no versions, so the
calls themselves run only against a real storage account; docs/limits.md)."""

from types import SimpleNamespace

from incarnate.stores.azure import hidden_versions


def blob(name: str, version: str | None, current: bool | None):
    return SimpleNamespace(name=name, version_id=version, is_current_version=current)


def test_a_blob_whose_current_version_was_deleted_is_read_from_its_newest_version():
    listing = [
        blob("backups/a/1/manifest.json", "2026-12-01T00:00:00.0000000Z", False),
        blob("backups/a/1/manifest.json", "2026-12-02T00:00:00.0000000Z", False),  # the hidden current one
        blob("chunks/ab/abcd", "2026-12-01T00:00:00.0000000Z", True),
        blob("chunks/ab/abce", "2026-12-01T00:00:00.0000000Z", False),
        blob("chunks/ab/abce", "2026-12-03T00:00:00.0000000Z", True),
    ]
    assert hidden_versions(listing) == {"backups/a/1/manifest.json": "2026-12-02T00:00:00.0000000Z"}


def test_a_container_without_versions_hides_nothing():
    assert hidden_versions([blob("chunks/ab/abcd", None, None), blob("locks/x-000001.json", None, None)]) == {}
