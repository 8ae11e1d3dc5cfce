"""arksim: a simulator of Volcengine Ark's content-generation task API (Seedance video, Seed3D).

Pure WSGI (Werkzeug), no Django. Use it in-process through `Simulator.transport()` or as
a real server with `Simulator.serve()` / `python -m arksim`. See arksim/README.md.
"""

from __future__ import annotations

from .clock import SimClock
from .errors import ArkHttpError
from .faults import FAULT_ENDPOINTS, FAULT_KINDS, Faults
from .simulator import Simulator

__all__ = ["FAULT_ENDPOINTS", "FAULT_KINDS", "ArkHttpError", "Faults", "SimClock", "Simulator"]
