"""The backup stage's choices that need no running stack: how an update's pre-update backup takes its databases."""

from pathlib import Path

from incarnate.config import BackupSettings
from incarnate.releases import parse_descriptor
from incarnate.stages.backup import for_update


def test_an_update_whose_release_runs_its_database_in_another_image_backs_up_with_dumps():
    text = (Path(__file__).parents[2] / "examples/pgdemo/releases/1.0.0/release.yaml").read_text()
    old = parse_descriptor(text, "1.0.0")
    same_db = parse_descriptor(text.replace("app: pgdemo/app:1.0.0", "app: pgdemo/app:1.1.0"), "1.1.0")
    new_db = parse_descriptor(text.replace("db: pgdemo/db:1.0.0", "db: pgdemo/db:2.0.0"), "2.0.0")
    settings = BackupSettings()
    assert settings.base == "auto"
    assert for_update(settings, old, same_db).base == "auto"
    assert for_update(settings, old, new_db).base == "logical"
