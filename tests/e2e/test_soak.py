"""A short soak of `make run` (harness/soak.py; docs/reliability.md records the 30-minute run).

A fresh clone's bin/run.py (SQLite, the embedded broker, the simulator with its demo),
40 tasks on top of the demo's trickle, about two minutes: no process dies, no
CRITICAL line or traceback, a queued task to cancel within 30 s, every output archived
with the simulator's sha256.
"""

from __future__ import annotations

import pytest

from harness.soak import soak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_it_keeps_make_run_up_and_archives_every_output_in_a_short_soak() -> None:
    result = soak(minutes=1.5, tasks=40)
    details = "\n".join((result.process_deaths + result.bad_lines + result.problems)[:30])
    assert result.first_cancellable_seconds is not None and result.first_cancellable_seconds <= 30, result.table()
    assert result.process_deaths == [] and result.bad_lines == [], details
    assert result.problems == [], details
    assert result.burst_created == 40 and result.outputs["archived"] >= 40, result.table()
    assert result.outputs["previews_converted"] > 0, result.table()
