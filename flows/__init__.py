"""Flows compose the stage tasks; each reads top to bottom as the list of stages it runs."""
