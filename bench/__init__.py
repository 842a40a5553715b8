"""Measurement scripts: library speed (``python -m bench.speed``) and service load (``python -m bench.loadtest``)."""
