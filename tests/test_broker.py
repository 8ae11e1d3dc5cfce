"""The embedded broker (arkdash/broker.py): whole messages only, and a bad file never stops a worker."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from kombu import Connection

from arkdash.broker import Transport


def _options(root: Path) -> dict[str, object]:
    for sub in ("out", "processed", "control"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(root / "out"),
        "data_folder_out": str(root / "out"),
        "processed_folder": str(root / "processed"),
        "control_folder": str(root / "control"),
        "store_processed": False,
    }


def _inject_bad_files(folder: Path, queue: str) -> None:
    # Names sort before any real message: those start with the monotonic clock in
    # milliseconds, which never begins with "0". ("1_…" did not: "1050_…" sorts first.)
    (folder / f"0_empty.{queue}.msg").write_bytes(b"")
    (folder / f"0_malformed.{queue}.msg").write_bytes(b'{"body": "truncat')


def test_it_skips_an_empty_and_a_malformed_message_and_delivers_the_next(tmp_path: Path) -> None:
    with Connection("filesystem://", transport=Transport, transport_options=_options(tmp_path)) as conn:
        queue = conn.SimpleQueue("jobs")
        _inject_bad_files(tmp_path / "out", "jobs")
        queue.put({"n": 1})
        message = queue.get(timeout=5)
        assert message.payload == {"n": 1}
        message.ack()
        queue.close()
    assert sorted(p.name for p in (tmp_path / "rejected").iterdir()) == ["0_empty.jobs.msg", "0_malformed.jobs.msg"]
    assert list((tmp_path / "out").iterdir()) == []


def test_it_never_shows_a_reader_a_message_being_written(tmp_path: Path) -> None:
    # A reader polling the folder while a writer writes: with kombu's own _put it could
    # take a file between its creation and its write (kombu#1551).
    options = _options(tmp_path)
    with Connection("filesystem://", transport=Transport, transport_options=options) as conn:
        channel = conn.default_channel
        big = {"blob": "x" * 200_000}
        writer = threading.Thread(target=lambda: [channel._put("race", big) for _ in range(100)])
        writer.start()
        seen = 0
        while writer.is_alive() or seen < 100:
            try:
                assert channel._get("race") == big
                seen += 1
            except Exception as error:  # noqa: BLE001 - only Empty is allowed
                assert type(error).__name__ == "Empty", error
                if not writer.is_alive() and not any((tmp_path / "out").iterdir()):
                    break
        writer.join()
    assert seen == 100
    assert not (tmp_path / "rejected").exists()


@pytest.mark.slow
def test_it_keeps_a_celery_worker_running_after_an_empty_and_a_malformed_message(tmp_path: Path) -> None:
    app = Celery("broker-test", set_as_current=False)
    app.conf.update(
        broker_url="filesystem://",
        broker_transport="arkdash.broker:Transport",
        broker_transport_options=_options(tmp_path),
        task_default_queue="celery",
        result_backend=None,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    done: list[int] = []
    got_two = threading.Event()

    @app.task(name="broker_test.record")
    def record(n: int) -> None:
        done.append(n)
        if len(done) == 2:
            got_two.set()

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
        _inject_bad_files(tmp_path / "out", "celery")
        record.delay(1)
        record.delay(2)
        assert got_two.wait(30), f"the worker processed {done} after the bad messages"
        assert worker.consumer is not None and worker.blueprint.state == 1  # RUN
    assert done == [1, 2]
    assert len(list((tmp_path / "rejected").iterdir())) == 2
