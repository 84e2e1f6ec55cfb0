"""The `incarnate` command: above flows/ and deployments/, which it runs; the core (incarnate/) never imports it."""
