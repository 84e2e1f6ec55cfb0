"""Docker's own error words, with what to do where an operator could not guess it."""

from incarnate.compose import explained
from incarnate.errors import StageError

DOCKER_SAYS = (
    "starting stack acme failed: failed to create network acme_default: Error response from daemon: could not "
    "find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
)


def test_an_engine_out_of_network_ranges_says_how_to_give_it_more():
    said = str(explained(StageError(DOCKER_SAYS), "local"))
    assert said.startswith(DOCKER_SAYS)
    assert "The engine of host local has no address range left for another network" in said
    assert "default-address-pools" in said and "/etc/docker/daemon.json" in said


def test_other_errors_stay_as_they_are():
    error = StageError("starting stack acme failed: port is already allocated")
    assert explained(error, "local") is error
