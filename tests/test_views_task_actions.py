from __future__ import annotations

from tasks_app.models import Task, TaskKind, TaskStatus
from tasks_app.services.sync import sync_account

HTMX = {"HX-Request": "true", "HX-Current-URL": "http://testserver/?status=queued"}


def mirror(sim, account, *specs: dict) -> list[Task]:
    ids = [sim.add_task(**spec) for spec in specs]
    sync_account(account=account, full_sweep=True)
    sim.reset_stats()
    return [Task.objects.get(account=account, ark_id=ark_id) for ark_id in ids]


def test_it_cancels_from_the_row_and_answers_with_the_row(sim, account, user_client):
    [task] = mirror(sim, account, {"status": "queued"})
    response = user_client.post(f"/tasks/{task.pk}/cancel/", headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<tr id="task-{task.pk}"')
    assert "badge-cancelled" in html and "Cancelled." in html
    assert f'hx-post="/tasks/{task.pk}/cancel/"' not in html  # no cancel button on a cancelled row


def test_it_explains_a_refused_cancel_on_the_row(sim, account, user_client):
    [task] = mirror(sim, account, {"status": "queued"})
    sim.advance(sim.queue_seconds + 1)
    html = user_client.post(f"/tasks/{task.pk}/cancel/", headers=HTMX).content.decode()
    assert "badge-running" in html
    assert "Ark refused to cancel: It is already running" in html


def test_it_confirms_on_a_page_without_javascript_then_redirects_back_with_a_message(sim, account, user_client):
    [task] = mirror(sim, account, {"status": "queued"})
    page = user_client.get(f"/tasks/{task.pk}/cancel/?next=/%3Fkind%3Dvideo")
    assert page.status_code == 200 and b"Cancel the task" in page.content
    assert sim.stats().get("delete", 0) == 0
    response = user_client.post(f"/tasks/{task.pk}/cancel/", {"next": "/?kind=video"}, follow=True)
    assert response.redirect_chain[-1][0] == "/?kind=video"
    assert "Cancelled." in response.content.decode()


def test_it_ignores_a_next_url_pointing_elsewhere(sim, account, user_client):
    [task] = mirror(sim, account, {"status": "queued"})
    response = user_client.post(f"/tasks/{task.pk}/cancel/", {"next": "https://evil.example/"})
    assert response["Location"] == f"/tasks/{task.pk}/"


def test_it_asks_again_on_the_row_before_deleting_unarchived_outputs(sim, account, user_client):
    [task] = mirror(sim, account, {"status": "succeeded"})
    html = user_client.post(f"/tasks/{task.pk}/delete/", headers=HTMX).content.decode()
    assert "not archived" in html and "Delete anyway" in html and '"confirm_unarchived": "1"' in html
    assert sim.stats().get("delete", 0) == 0
    html = user_client.post(f"/tasks/{task.pk}/delete/", {"confirm_unarchived": "1"}, headers=HTMX).content.decode()
    assert "gone from Ark" in html and "record deleted" in html
    assert sim.stats()["delete"] == 1


def test_it_requires_the_checkbox_on_the_page_without_javascript(sim, account, user_client):
    [task] = mirror(sim, account, {"status": "succeeded"})
    page = user_client.get(f"/tasks/{task.pk}/delete/")
    assert b'name="confirm_unarchived" value="1" required' in page.content
    response = user_client.post(f"/tasks/{task.pk}/delete/")
    assert response.status_code == 409 and b"not archived" in response.content
    assert sim.stats().get("delete", 0) == 0


def test_it_removes_a_task_gone_upstream_from_arkdash(sim, account, user_client):
    [task] = mirror(sim, account, {"status": "failed"})
    user_client.post(f"/tasks/{task.pk}/delete/")
    response = user_client.post(f"/tasks/{task.pk}/delete/", {"remove_local": "1"}, follow=True)
    assert not Task.objects.filter(pk=task.pk).exists()
    assert "removed from ArkDash" in response.content.decode()


def test_it_asks_for_the_count_before_cancelling_everything_matching_the_filter(sim, account, user_client):
    videos = mirror(sim, account, *[{"status": "queued"}] * 3, {"status": "queued", "kind": "3d"},
                    {"status": "running"})
    page = user_client.post("/tasks/cancel/?kind=video", {"scope": "matching"})
    assert "3 queued tasks match this filter" in page.content.decode()
    assert sim.stats().get("delete", 0) == 0
    response = user_client.post("/tasks/cancel/?kind=video", {"scope": "matching", "confirmed": "1"}, follow=True)
    assert "3 tasks cancelled." in response.content.decode()
    assert response.redirect_chain[-1][0] == "/?kind=video"
    statuses = dict(Task.objects.values_list("ark_id", "status"))
    assert [statuses[t.ark_id] for t in videos] == ["cancelled"] * 3 + ["queued", "running"]
    assert Task.objects.get(ark_id=videos[3].ark_id).kind == TaskKind.MODEL_3D


def test_it_cancels_the_selected_rows(sim, account, user_client):
    one, two, three = mirror(sim, account, *[{"status": "queued"}] * 3)
    response = user_client.post("/tasks/cancel/", {"scope": "selected", "ids": [one.pk, three.pk], "confirmed": "1"},
                                follow=True)
    assert "2 tasks cancelled." in response.content.decode()
    assert Task.objects.get(pk=two.pk).status == TaskStatus.QUEUED


def test_it_refuses_to_cancel_everything_under_an_invalid_filter(sim, account, user_client):
    mirror(sim, account, {"status": "queued"})
    response = user_client.post("/tasks/cancel/?status=nonsense", {"scope": "matching", "confirmed": "1"},
                                follow=True)
    assert "Fix the filter" in response.content.decode()
    assert sim.stats().get("delete", 0) == 0


def test_it_only_accepts_post_for_actions(account, user_client):
    assert user_client.get("/tasks/cancel/").status_code == 405
