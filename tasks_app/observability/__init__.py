"""Health, metrics and structured logs (see metrics.py, counters.py, logging.py, health.py)."""
