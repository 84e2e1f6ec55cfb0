"""Prefect blocks: what an operator configures (and edits in the UI). Secrets are SecretStr."""
