"""Task ids as Ark makes them: `cgt-<Beijing time YYYYMMDDHHMMSS>-<5 × [a-z0-9]>`."""

from __future__ import annotations

import random
import re
import secrets
import string
from datetime import UTC, datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8))
ID_ALPHABET = string.ascii_lowercase + string.digits
TASK_ID_RE = re.compile(r"^cgt-\d{14}-[a-z0-9]{5}$")


def task_id_for(created_at: float, rng: random.Random) -> str:
    stamp = datetime.fromtimestamp(int(created_at), UTC).astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
    suffix = "".join(rng.choice(ID_ALPHABET) for _ in range(5))
    return f"cgt-{stamp}-{suffix}"


def request_id(now: float) -> str:
    """Shaped like Ark's: a timestamp then random hex (not from the seeded rng, so the
    number of requests never changes which task ids a seed produces)."""
    stamp = datetime.fromtimestamp(int(now), UTC).astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
    return f"{stamp}{secrets.token_hex(12)}"
