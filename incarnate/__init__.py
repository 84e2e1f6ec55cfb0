"""incarnate: every deployment of a Compose stack is a restore from a backup."""

__version__ = "0.1.0"
