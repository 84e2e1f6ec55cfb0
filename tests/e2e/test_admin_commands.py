"""An operator's admin tasks from the command line alone: a command in a service of the stack, a stack secret."""

from incarnate import settings


def test_a_command_runs_in_a_service_of_the_stack_with_its_exit_code(customer):
    before = customer.incarnate("exec", str(customer.repo), "db", "--", "true")
    assert before.returncode == 2
    assert f"error: stack {customer.stack} is not deployed on host local; there is nothing to run in." in before.stderr
    customer.incarnate("status", str(customer.repo))
    assert not (settings.stacks_dir() / customer.stack).exists()  # a look leaves nothing behind
    assert customer.install().returncode == 0
    database = customer.incarnate("exec", str(customer.repo), "db", "--", "sh", "-c", "echo $MARIADB_DATABASE")
    assert (database.returncode, database.stdout) == (0, "demo\n"), database.stderr
    assert customer.incarnate("exec", str(customer.repo), "app", "--", "sh", "-c", "exit 3").returncode == 3


def test_a_stack_secret_is_read_from_the_vault_without_the_env_file(customer):
    assert customer.install().returncode == 0
    env_file = (settings.stacks_dir() / customer.stack / "incarnate.env").read_text()
    shown = customer.incarnate("secret", str(customer.repo), "db_password")
    assert shown.returncode == 0, shown.stderr
    assert f"DB_PASSWORD={shown.stdout.strip()}\n" in env_file
    unknown = customer.incarnate("secret", str(customer.repo), "admin_password")
    assert unknown.returncode == 2
    assert f"error: stack {customer.stack} has no secret admin_password in " in unknown.stderr
    assert "(it has: db_password)." in unknown.stderr
    listed = customer.incarnate("secret", str(customer.repo))
    assert (listed.returncode, listed.stdout) == (0, "db_password\n"), listed.stderr  # names, never a value
