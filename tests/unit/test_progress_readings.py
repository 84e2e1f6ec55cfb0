"""Progress readings: quiet for short work, throttled, honest about estimates; shown on a terminal or into a log."""

import io

from incarnate.progress import Meter, Reading, TerminalSink, human, reporting, track


class Recorder:
    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def show(self, reading: Reading) -> None:
        self.readings.append(reading)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_short_work_shows_nothing_and_long_work_a_reading_a_second_then_done():
    recorder, clock = Recorder(), Clock()
    quick = Meter("backup of volume-files", None, False, (recorder,), clock)
    quick.advance(10 << 20)
    quick.finish()
    assert recorder.readings == []
    slow = Meter("restore of database-demo", 100 << 20, False, (recorder,), clock)
    for _ in range(100):
        clock.now += 0.1
        slow.advance(1 << 20)
    slow.finish()
    assert 6 <= len(recorder.readings) <= 9  # from 3 s on, one a second, then done
    last = recorder.readings[-1]
    assert last.finished and last.percent() == 100.0
    assert last.describe() == "restore of database-demo: 100.0 MiB done 10.0 MiB/s, 10 s"
    assert (
        recorder.readings[0].describe() == "restore of database-demo: 30.0 MiB of 100.0 MiB (30 %) at 10.0 MiB/s, 3 s"
    )


def test_an_estimate_never_claims_to_be_done_before_the_end():
    reading = Reading("backup of database-demo", 100 << 20, 100 << 20, True, 10.0)
    assert reading.percent() == 99.0 and "of ~100.0 MiB" in reading.describe()
    assert Reading("x", 5, None, True, 1.0).percent() is None
    outgrown = Reading("backup of volume-files", 100 << 20, 10 << 10, True, 3.0)  # the last backup held 10 KiB
    assert outgrown.percent() is None and outgrown.describe() == "backup of volume-files: 100.0 MiB at 33.3 MiB/s, 3 s"


def test_meters_report_to_the_sinks_in_force_where_they_were_made_and_a_failing_sink_is_ignored():
    class Broken:
        def show(self, reading: Reading) -> None:
            raise RuntimeError("the UI is down")

    recorder = Recorder()
    with reporting(recorder), reporting(Broken()):
        with track("backup of x", 10) as meter:
            meter.started -= 10  # as if it had run for ten seconds
            meter.advance(5)
    assert [reading.finished for reading in recorder.readings] == [False, True]
    with track("backup of y") as outside:
        outside.started -= 10
        outside.advance(5)
    assert len(recorder.readings) == 2


def test_terminal_sink_writes_a_line_now_and_then_into_a_log():
    out = io.StringIO()
    sink = TerminalSink(out, every=15)
    for second in range(3, 40):
        sink.show(Reading("backup of database-demo", second << 20, None, False, float(second)))
    sink.show(Reading("backup of database-demo", 40 << 20, None, False, 40.0, finished=True))
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and lines[-1].startswith("backup of database-demo: 40.0 MiB done")
    assert human(1536) == "1.5 KiB" and human(12) == "12 B"
