"""Progress of long transfers: on the terminal of the CLI, and as a progress artifact of the task in the Prefect UI.
The data is small, so progress shows from the first second (INCARNATE_PROGRESS_AFTER=0; 3 s by default)."""

import subprocess

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType

SHOW_AT_ONCE = {"INCARNATE_PROGRESS_AFTER": "0"}


def progress_artifacts(flow_run_id: str) -> list:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), type=ArtifactFilterType(any_=["progress"])
            )
        )


def test_a_long_backup_and_restore_show_bytes_rate_and_what_they_do(customer):
    assert customer.install().returncode == 0
    app = next(name for name in customer.containers() if name.endswith("-app-1"))
    subprocess.run(
        ["docker", "exec", app, "sh", "-c", "head -c 60000000 /dev/urandom > /data/files/big.bin"], check=True
    )

    backup = customer.incarnate("backup", str(customer.repo), env=SHOW_AT_ONCE)
    assert backup.returncode == 0, backup.stderr[-3000:]
    lines = [line for line in backup.stderr.splitlines() if line.startswith("backup of volume-files: ")]
    assert lines and " MiB/s, " in lines[0] and lines[-1].split(": ")[1].split(" done ")[0].endswith("MiB")
    assert " done " in lines[-1]
    run_id = (
        backup.stdout.split("/runs/flow-run/")[1].split()[0]
        if "/runs/flow-run/" in backup.stdout
        else backup.stderr.split("/runs/flow-run/")[1].split()[0]
    )
    (artifact,) = [found for found in progress_artifacts(run_id) if "volume-files" in (found.description or "")]
    assert artifact.data == 100.0 and artifact.description.startswith("backup of volume-files: ")

    customer.remove_stack()
    recovered = customer.incarnate("recover", str(customer.repo), env=SHOW_AT_ONCE)
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    assert any(
        line.startswith("restore of volume-files: ") and " done " in line for line in recovered.stderr.splitlines()
    ), [line for line in recovered.stderr.splitlines() if "restore" in line]
