import pytest

from incarnate.config import parse_stack_config, parse_version
from incarnate.errors import ConfigError

VALID = "stack: acme\nproduct: demo\nrelease: 1.0.0\n"


def test_valid_stack_yaml_is_accepted_with_defaults():
    config = parse_stack_config(VALID, "stack.yaml")
    assert (config.stack, config.product, config.release, config.http_port) == ("acme", "demo", "1.0.0", 8080)
    assert config.backup.store is None


def test_unknown_key_is_named_with_file():
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(VALID + "relase: 1.1.0\n", "stack.yaml in repo at HEAD")
    assert str(raised.value) == "stack.yaml in repo at HEAD: field 'relase' is not a known setting; check its spelling."


def test_missing_release_is_named():
    with pytest.raises(ConfigError, match=r"^stack.yaml: field 'release' is missing; it is required\.$"):
        parse_stack_config("stack: acme\nproduct: demo\n", "stack.yaml")


@pytest.mark.parametrize("release", ["latest", "1.0", "v1.0.0", "01.0.0", "1.0.0-rc1"])
def test_release_that_is_not_a_version_is_refused(release):
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(f"stack: acme\nproduct: demo\nrelease: '{release}'\n", "stack.yaml")
    assert "field 'release'" in str(raised.value)
    assert "MAJOR.MINOR.PATCH" in str(raised.value)


def test_yaml_number_release_is_refused_not_coerced():
    with pytest.raises(ConfigError, match="got '1.1'"):
        parse_stack_config("stack: acme\nproduct: demo\nrelease: 1.1\n", "stack.yaml")


def test_nested_unknown_key_names_its_path():
    text = VALID + "backup:\n  store:\n    kind: local\n    path: /x\n    user: bob\n"
    with pytest.raises(ConfigError, match="field 'backup.store"):
        parse_stack_config(text, "stack.yaml")


def test_stack_name_must_be_a_compose_project_name():
    with pytest.raises(ConfigError, match="field 'stack': expected a lowercase name"):
        parse_stack_config("stack: Acme Corp\nproduct: demo\nrelease: 1.0.0\n", "stack.yaml")


def test_not_a_mapping_and_broken_yaml_are_refused():
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_stack_config("- a\n- b\n", "stack.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_stack_config("stack: [unclosed\n", "stack.yaml")


def test_parse_version_orders_numerically():
    assert parse_version("1.10.0") > parse_version("1.9.3")


def test_time_zone_defaults_to_berlin_and_must_be_an_iana_name():
    assert parse_stack_config(VALID, "stack.yaml").timezone == "Europe/Berlin"
    assert parse_stack_config(VALID + "timezone: America/New_York\n", "stack.yaml").timezone == "America/New_York"
    with pytest.raises(
        ConfigError, match="field 'timezone': expected an IANA time zone such as Europe/Berlin, got 'CET.1'"
    ):
        parse_stack_config(VALID + "timezone: CET+1\n", "stack.yaml")


def test_write_once_mode_defaults_to_locked_and_says_who_could_undo_it():
    from incarnate.stores import lock_description

    class Enforcing:
        def lock_support(self):
            return None

    config = parse_stack_config("stack: a\nproduct: demo\nrelease: 1.0.0\nbackup: {lock_days: 30}\n", "stack.yaml")
    assert config.backup.lock_mode == "locked"
    assert "locked policy: nobody, not even the account's owner" in lock_description(
        Enforcing(), 30, config.backup.lock_mode
    )
    assert "unlocked policy: whoever holds the account key" in lock_description(Enforcing(), 30, "unlocked")
    with pytest.raises(ConfigError, match="field 'backup.lock_mode'"):
        parse_stack_config("stack: a\nproduct: demo\nrelease: 1.0.0\nbackup: {lock_mode: maybe}\n", "stack.yaml")


def test_a_backup_schedule_that_is_not_cron_is_refused():
    import pytest

    from incarnate.config import parse_stack_config
    from incarnate.errors import ConfigError

    with pytest.raises(ConfigError, match=r"field 'backup.drill_schedule': expected a cron expression of five fields"):
        parse_stack_config(
            "stack: a\nproduct: demo\nrelease: 1.0.0\nbackup:\n  drill_schedule: every sunday\n", "stack.yaml"
        )
    with pytest.raises(ConfigError, match=r"field 'backup.verify_sample'"):
        parse_stack_config("stack: a\nproduct: demo\nrelease: 1.0.0\nbackup:\n  verify_sample: some\n", "stack.yaml")


def test_h_in_a_schedule_is_a_value_of_the_stacks_own_and_spreads_many_stacks():
    from incarnate.config import spread

    minutes = [int(spread("H(0-9) 2 * * *", f"customer-{number}").split()[0]) for number in range(100)]
    assert all(0 <= minute <= 9 for minute in minutes)
    assert max(minutes.count(minute) for minute in range(10)) <= 20  # about ten a minute, none crowded
    assert spread("H(0-9) 2 * * *", "acme") == spread("H(0-9) 2 * * *", "acme")  # the same every night
    assert spread("H(0-9) 2 * * *", "acme").endswith(" 2 * * *")
    weekly = spread("H H * * H", "acme").split()
    assert 0 <= int(weekly[0]) <= 59 and 0 <= int(weekly[1]) <= 23 and 0 <= int(weekly[4]) <= 6
    assert spread("30 4 * * 0", "acme") == "30 4 * * 0"  # nothing hashed, nothing changed


@pytest.mark.parametrize("schedule", ["H(5-70) 2 * * *", "H(9-0) 2 * * *", "H/15 2 * * *", "2 H(0-30) * * *"])
def test_a_hashed_field_outside_its_range_is_refused(schedule):
    with pytest.raises(
        ConfigError, match=r"field 'backup.schedule': expected a cron expression of five fields .*H\(0-9\)"
    ):
        parse_stack_config(
            f"stack: a\nproduct: demo\nrelease: 1.0.0\nbackup:\n  schedule: '{schedule}'\n", "stack.yaml"
        )
