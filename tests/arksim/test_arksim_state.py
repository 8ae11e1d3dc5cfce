"""arksim --state-file (arksim/state.py): a restarted simulator continues where it stopped."""

from __future__ import annotations

import threading
from pathlib import Path

from arksim import SimClock, Simulator, cli, state

from .support import KEY, START


def _sim(clock: SimClock) -> Simulator:
    return Simulator(api_keys=(KEY,), clock=clock, list_rate_per_second=None)


def test_it_restores_tasks_their_progress_and_output_urls_after_a_restart(tmp_path: Path) -> None:
    clock = SimClock(START)
    first = _sim(clock)
    running = first.add_task(kind="video", status="running", queue_seconds=10, run_seconds=100)
    done = first.add_task(kind="3d", status="succeeded", file_format="usdz")
    path = tmp_path / "state.json"
    state.save(first, path)

    second = _sim(clock)
    assert state.load(second, path)
    assert second.task_json(running)["status"] == "running"
    assert second.task_json(done) == first.task_json(done)  # same output URLs: same signing secret
    assert second.output_sha256(done, "model_zip") == first.output_sha256(done, "model_zip")
    second.advance(200)
    assert second.task_json(running)["status"] == "succeeded"


def test_it_starts_afresh_from_a_missing_or_unreadable_state_file(tmp_path: Path) -> None:
    assert not state.load(_sim(SimClock(START)), tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    sim = _sim(SimClock(START))
    assert not state.load(sim, tmp_path / "bad.json")
    assert sim.list_tasks(KEY, page_size=10)["total"] == 0


def test_it_seeds_the_demo_only_on_the_first_start(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    options = {"port": 0, "host": "127.0.0.1", "api_keys": [KEY], "queue_seconds": 5.0, "run_seconds": 20.0,
               "seed_demo": True, "demo_count": 20, "demo_trickle": 0.0, "list_rate": None, "get_rate": None,
               "delete_rate": None, "rng_seed": 1, "state_file": str(path)}
    for _ in range(2):
        stop = threading.Event()
        stop.set()  # serve, then stop at once (saving the state)
        assert cli.run(options, stop=stop, out=open(tmp_path / "out.txt", "a")) == 0
    ids = [task["id"] for task in __import__("json").loads(path.read_text())["tasks"]]
    assert len(ids) == len(set(ids)) == 20  # seeded once, not again on the restart
