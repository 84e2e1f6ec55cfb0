"""A host made from nothing, for real: a bare Debian root (mmdebstrap) with only its sshd, in a network namespace of
its own. `incarnate init ssh://root@...` installs Docker from Debian's packages, starts it (no init system there),
puts Compose in place and installs a stack; a host that cannot get Docker says so and changes nothing else."""

from tests.bare_host import bare_host


def test_init_prepares_a_bare_debian_host_and_installs_a_stack_there(customer, tmp_path):
    env = {"INCARNATE_CUSTOMERS": str(tmp_path / "customers.yaml")}
    with bare_host(tmp_path / "bare") as host:
        options = ("--host", host.url(), "--identity", str(host.key), "--known-hosts", str(host.known_hosts))
        sources = host.root / "etc" / "apt" / "sources.list"
        mirror = sources.read_text()
        sources.write_text("deb http://127.0.0.1:9/debian bookworm main\n")  # a host whose mirror is unreachable
        refused = customer.incarnate("init", str(customer.repo), *options, env=env)
        assert refused.returncode == 1, refused.stdout[-2000:]
        said = refused.stderr.strip().splitlines()[-1]
        assert said.startswith(
            f"error: host {host.url()}:22 has no Docker Engine, and installing Debian's docker.io"
        ), said
        assert "Unable to locate package docker.io" in said and said.endswith("Nothing else was changed."), said
        assert not (tmp_path / "customers.yaml").exists()  # nothing registered

        sources.write_text(mirror)
        result = customer.incarnate("init", str(customer.repo), *options, env=env)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-4000:] + (host.root / "var/log/dockerd.log").read_text()[-2000:]
        for step in (
            "logged in as root",
            "Debian GNU/Linux 12",
            "Docker Engine 20.10.24+dfsg1 installed, started without an init system",
            "Compose 5.6.1 installed as /usr/local/lib/docker/cli-plugins/docker-compose",  # this machine's binary
        ):
            assert f"create host {host.url()}:22: {step}" in output, step
        assert (
            f"stack {customer.stack} installed: release 1.0.0 at http://127.0.0.1:{customer.port} on {host.url()}"
            in (result.stdout)
        )
        running = host.ssh("docker ps --format '{{.Names}}'")
        assert sorted(running.stdout.split()) == [f"{customer.stack}-app-1", f"{customer.stack}-db-1"], running
        status = customer.incarnate("status", str(customer.repo), *options)
        assert f"stack {customer.stack} on host {host.url()}:22: demo 1.0.0" in status.stdout, status.stderr
        assert (
            f"answers   http://127.0.0.1:{customer.port} on {host.url()}:22 -> release 1.0.0, schema 1" in status.stdout
        )
