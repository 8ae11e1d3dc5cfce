from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tasks_app.models import Artifact, ArtifactState, Task

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, int]:
    out = StringIO()
    try:
        call_command("archive", *args, stdout=out)
    except SystemExit as exit:
        return out.getvalue(), int(exit.code or 0)
    return out.getvalue(), 0


def test_it_archives_every_pending_output_and_says_so(sim, mirror, local_archive):
    video = mirror(sim.add_task(kind="video", status="succeeded"), archive_handoff_pending=True)
    model = mirror(sim.add_task(kind="3d", status="succeeded"), archive_handoff_pending=True)

    output, status = run()

    assert status == 0
    assert f"{video.ark_id} video: archived" in output
    assert f"{video.ark_id} last_frame: archived" in output
    assert f"{model.ark_id} model_zip: archived" in output
    assert f"{model.ark_id} model_file: archived" in output
    assert "Done: 3 archived" in output
    assert set(Artifact.objects.values_list("state", flat=True)) == {ArtifactState.ARCHIVED}
    assert not Task.objects.filter(archive_handoff_pending=True).exists()


def test_it_archives_only_the_task_it_is_given(sim, mirror, local_archive):
    wanted = mirror(sim.add_task(kind="video", status="succeeded", return_last_frame=False))
    other = mirror(sim.add_task(kind="video", status="succeeded", return_last_frame=False))

    output, status = run("--task", wanted.ark_id)

    assert status == 0
    assert wanted.ark_id in output and other.ark_id not in output
    assert Artifact.objects.get(task=wanted).state == ArtifactState.ARCHIVED
    assert not Artifact.objects.filter(task=other).exists()


def test_it_accepts_the_arkdash_number_of_a_task(sim, mirror, local_archive):
    task = mirror(sim.add_task(kind="video", status="succeeded", return_last_frame=False))

    output, status = run("--task", str(task.pk))

    assert status == 0
    assert f"{task.ark_id} video: archived" in output


def test_it_retries_failed_outputs_at_once_and_exits_1_when_one_fails(sim, mirror, local_archive):
    task = mirror(sim.add_task(kind="video", status="succeeded", return_last_frame=False))
    sim.faults.inject("output", "500", times=2)

    output, status = run("--task", task.ark_id)
    assert status == 1
    assert "video: failed, will retry at" in output and "answered 500" in output

    output, status = run("--task", task.ark_id)  # the backoff is not waited for in the foreground
    assert status == 1

    output, status = run("--task", task.ark_id)
    assert status == 0
    assert "video: archived" in output


def test_it_reports_a_lost_output(sim, mirror, local_archive):
    task = mirror(sim.add_task(kind="video", status="succeeded", return_last_frame=False))
    sim.advance(25 * 3600)

    output, status = run("--task", task.ark_id)

    assert status == 1
    assert "video: Lost: the output URL answered 403" in output


def test_it_says_when_there_is_nothing_to_do(db, local_archive):
    output, status = run()

    assert status == 0
    assert output.strip() == "Nothing to archive."


def test_it_refuses_an_unknown_task_clearly(db):
    with pytest.raises(CommandError, match="No task 'cgt-nope'"):
        call_command("archive", "--task", "cgt-nope")


def test_it_prints_the_archive_health(sim, mirror, local_archive):
    mirror(sim.add_task(kind="video", status="succeeded"), archive_handoff_pending=True)
    run("--task", Task.objects.get().ark_id)

    output, status = run("--status")

    assert status == 0
    assert "2 archived" in output
    assert "Archive lag: 0 s." in output
