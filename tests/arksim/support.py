"""Shared constants and helpers of the simulator's own tests."""

from __future__ import annotations

import httpx

from arksim import Simulator

KEY, OTHER_KEY = "sim-key", "other-key"
START = 1_760_000_000  # 2025-10-09 08:53:20 UTC = 16:53:20 in Beijing
DAY = 86400
TASKS = "/contents/generations/tasks"


def api_client(ark: Simulator, key: str | None = KEY) -> httpx.Client:
    """An httpx client on the in-process simulator, authenticated with `key` (None: no header)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(transport=ark.transport(), base_url="http://arksim.test/api/v3", headers=headers)
