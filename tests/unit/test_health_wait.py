"""What incarnate makes of `docker inspect` while it waits for a started stack to be healthy."""

import pytest

from incarnate.errors import StageError
from incarnate.health import Container, container_of, still_starting


def inspected(
    status: str = "running",
    health: str | None = "starting",
    test: list[str] | None = None,
    restarts: int = 0,
    exit_code: int = 0,
    service: str = "db",
) -> dict:
    state = {"Status": status, "ExitCode": exit_code, **({"Health": {"Status": health}} if health else {})}
    config = {
        "Labels": {"com.docker.compose.service": service},
        **({"Healthcheck": {"Test": test, "Timeout": 5_000_000_000}} if test else {}),
    }
    return {
        "Id": f"id-{service}",
        "Name": f"/stack-{service}-1",
        "State": state,
        "Config": config,
        "RestartCount": restarts,
    }


def test_the_health_check_is_run_as_docker_runs_it():
    assert container_of(inspected(test=["CMD", "mariadb-admin", "ping"])).check == ("mariadb-admin", "ping")
    shell_form = container_of(inspected(test=["CMD-SHELL", "pg_isready -q || exit 1"]))
    assert shell_form.check == ("/bin/sh", "-c", "pg_isready -q || exit 1") and shell_form.check_timeout == 5.0
    assert container_of(inspected(health=None, test=["NONE"])).check is None  # HEALTHCHECK NONE: no health at all


def test_a_container_is_ready_once_it_runs_without_a_check_or_once_its_check_passed():
    plain = container_of(inspected(health=None, service="worker"))
    checked = container_of(inspected(test=["CMD", "true"]))
    assert still_starting([plain, checked], set(), {}) == [checked]
    assert still_starting([plain, checked], {checked.id}, {}) == []
    assert still_starting([container_of(inspected(health="healthy", test=["CMD", "true"]))], set(), {}) == []


@pytest.mark.parametrize(
    "state, said",
    [
        (dict(status="exited", exit_code=3), "service app exited with code 3"),
        (dict(status="restarting"), "service app keeps restarting"),
        (dict(restarts=2), "service app keeps restarting"),  # restarted since the first look (1)
        (dict(health="unhealthy"), "service app is unhealthy (Docker's own health check failed its retries)"),
    ],
)
def test_a_container_that_fails_ends_the_wait_at_once_naming_its_service(state, said):
    container = container_of(inspected(service="app", test=["CMD", "true"], **state))
    with pytest.raises(StageError) as raised:
        still_starting([container], set(), {container.id: 1})
    assert str(raised.value).startswith(said)


def test_a_one_shot_service_that_did_its_work_is_done():
    job = container_of(inspected(status="exited", exit_code=0, health=None, service="init"))
    assert still_starting([job], set(), {job.id: 0}) == []


def test_restarts_before_the_wait_began_do_not_count():
    container = Container(
        id="c",
        service="db",
        status="running",
        exit_code=0,
        restarts=5,
        health="starting",
        check=("true",),
        check_timeout=1.0,
    )
    assert still_starting([container], set(), {"c": 5}) == [container]
