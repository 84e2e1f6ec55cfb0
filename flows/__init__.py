"""Flows compose the stage tasks; each reads top to bottom as the list of stages it runs."""

import flows.heartbeats  # noqa: F401 - before any flow runs in this process
