"""Imported by the fork server of tests/unit/test_run_start.py only: a forked run finds it imported already."""
