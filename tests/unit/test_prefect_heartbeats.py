"""flows.heartbeats relies on a private switch of Prefect's engine: an upgrade without it fails here, not by flows
ending a second late in silence."""

import prefect.flow_engine

import flows.heartbeats


def test_every_flow_this_process_runs_stops_its_heartbeat_without_waiting_for_it():
    assert flows.heartbeats.can_unjoin()
    assert prefect.flow_engine._send_heartbeats is flows.heartbeats._send_heartbeats_unjoined
