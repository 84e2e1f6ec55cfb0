"""The `incarnate` command: above flows/ and deployments/, which it runs; the plain core (incarnate/) never imports it."""
