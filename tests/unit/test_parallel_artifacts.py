"""A backup reads the artifacts of one snapshot at once, and a failure of one stops the others."""

import threading
import time

from incarnate.datasources import at_once


class Source:
    def __init__(self, name: str) -> None:
        self.artifact = name


def test_artifacts_are_read_at_the_same_time_up_to_the_limit():
    running, peak, lock = [0], [0], threading.Lock()

    def work(source):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1

    assert at_once(work, [Source(f"a{n}") for n in range(4)], 2, stop=lambda: None) == []
    assert peak[0] == 2


def test_the_first_failure_stops_the_others_and_is_reported_first():
    stopped, both = threading.Event(), threading.Barrier(2)
    started: list[str] = []

    def work(source):
        started.append(source.artifact)
        both.wait(5)  # the database and the first volume are both under way
        if source.artifact == "database-demo":
            raise RuntimeError("dump failed")
        assert stopped.wait(5), "the other artifact was never stopped"
        raise OSError("stream ended")  # what a reader sees once its dump was ended

    failures = at_once(
        work, [Source("database-demo"), Source("volume-files"), Source("volume-more")], 2, stop=stopped.set
    )
    assert [type(failure) for failure in failures] == [RuntimeError, OSError]
    assert "volume-more" not in started  # nothing new starts after a failure


def test_each_artifact_runs_in_the_callers_context():
    # Progress displays and Prefect's run logging are context variables of the thread that runs the backup; an
    # artifact read in a pool thread without them showed no progress (seen in tests/e2e/test_progress.py).
    from incarnate.progress import Reading, reporting, track

    class Recorder:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def show(self, reading: Reading) -> None:
            self.seen.append(reading.what)

    recorder = Recorder()

    def work(source):
        with track(f"backup of {source.artifact}") as meter:
            meter.started -= 10
            meter.advance(1)

    with reporting(recorder):
        assert at_once(work, [Source("database-demo"), Source("volume-files")], 2, stop=lambda: None) == []
    assert sorted(set(recorder.seen)) == ["backup of database-demo", "backup of volume-files"]
