"""A native production-like topology for end-to-end, chaos and load runs (no Docker needed).

See topology.py for what runs, run.py to start it by hand, chaos.py for the fault run.
"""

from __future__ import annotations

from .clients import Dashboard, Row, SimControl
from .topology import Harness, HarnessConfig, HarnessError

__all__ = ["Dashboard", "Harness", "HarnessConfig", "HarnessError", "Row", "SimControl"]
