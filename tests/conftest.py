import pytest

from tests.servers import azurite, samba


@pytest.fixture(scope="session")
def samba_server(tmp_path_factory):
    with samba(tmp_path_factory.mktemp("samba")) as server:
        yield server


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory):
    with azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server
