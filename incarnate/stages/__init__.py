"""The seven stages every deployment runs, one module each, as plain functions (`run`); tasks/ wraps each
in a Prefect task of the same name, and flows/ composes the tasks.

    load config -> create host -> fetch backup -> restore -> start -> migrate -> backup

Load config runs first: it has no side effects, and it refuses bad input (stack.yaml, a
missing release, images the registry lacks) before the host or any running stack is touched.
"""

from incarnate.stages import backup, create_host, fetch_backup, load_config, migrate, restore, start

__all__ = ["backup", "create_host", "fetch_backup", "load_config", "migrate", "restore", "start"]
