"""How runs are triggered: UI deployments, the nightly backup schedule and CI triggers.

Until the deployments land, the command line (`incarnate install|backup`) runs the flows
directly; every run is still recorded in the Prefect server's history.
"""
