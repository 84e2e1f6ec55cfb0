"""Which host each served deployment of a stack acts on, and the customer registry that says so."""

from deployments.serve import stack_deployments
from incarnate.config import StackConfig
from incarnate.repo import CustomerConfig


def test_deployments_default_to_the_stacks_host_except_disaster_recovery():
    customer = CustomerConfig("/repos/acme", "HEAD", "0" * 40, StackConfig(stack="acme", product="demo", release="1.0.0"))
    made = {deployment.flow_name: deployment for deployment in stack_deployments(customer, "ssh://root@10.0.0.5:22")}
    assert made["backup"].parameters == {"repo": "/repos/acme", "docker_host": "ssh://root@10.0.0.5:22"}
    assert made["update"].parameters["docker_host"] == "ssh://root@10.0.0.5:22"
    assert made["disaster-recovery"].parameters == {"repo": "/repos/acme"}  # recovery goes elsewhere: asked each time
    local = {deployment.flow_name: deployment for deployment in stack_deployments(customer)}
    assert local["backup"].parameters == {"repo": "/repos/acme"}


def test_registry_keeps_each_stacks_host(tmp_path, monkeypatch):
    import subprocess

    import pytest

    from incarnate.customers import hosts, register
    from incarnate.errors import ConfigError

    repo = tmp_path / "acme"
    repo.mkdir()
    (repo / "stack.yaml").write_text("stack: acme\nproduct: demo\nrelease: 1.0.0\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "stack"], check=True)
    registry = tmp_path / "customers.yaml"
    monkeypatch.setenv("INCARNATE_CUSTOMERS", str(registry))

    register(str(repo), "ssh://root@10.0.0.5:22")
    assert hosts() == {str(repo): "ssh://root@10.0.0.5:22"}
    register(str(repo))  # moved back to this machine
    assert hosts() == {str(repo): None} and registry.read_text() == f"customers:\n- {repo}\n"
    registry.write_text("customers:\n- {repo: /a, hots: x}\n")
    with pytest.raises(ConfigError, match="neither a repo address nor a mapping with repo and host"):
        hosts()
