"""A database image whose health check passes while its entrypoint's initialisation server runs, as the official
PostgreSQL image's does: restore waits until the server that stays answers on the target database, instead of
loading into one that does not exist yet or is about to shut down."""

from bench.lying_product import official_like_release
from tests.e2e.test_publish import publish, release_list


def test_a_restore_waits_for_the_database_server_that_stays_not_the_one_the_image_initialises_with(customer, tmp_path):
    releases = str(tmp_path / "releases")
    folder, product = official_like_release(tmp_path / "release", init_pause=4)  # 3 inits: publish, proof, install
    published = publish(folder, releases)
    assert published.returncode == 0, published.stdout[-3000:] + published.stderr[-3000:]
    assert product in release_list(releases, product)

    customer.use(product)
    installed = customer.install(env={"INCARNATE_RELEASES": releases})
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    assert "database-pgdemo: loaded" in installed.stdout + installed.stderr
