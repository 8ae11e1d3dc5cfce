"""`manage.py sync --once`: one cycle in the foreground, saying what it did."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tasks_app.models import Account, Task

pytestmark = pytest.mark.usefixtures("unthrottled")


def _sync(*args: str) -> str:
    out = StringIO()
    call_command("sync", *args, stdout=out)
    return out.getvalue()


def test_it_runs_one_cycle_and_prints_what_it_did(sim, account):
    for status in ("queued", "running", "succeeded"):
        sim.add_task(kind="video", status=status)
    output = _sync("--once")
    assert "team: 1 calls (list 1); created 3, updated 0, unchanged 0, gone 0; full sweep" in output
    assert Task.objects.count() == 3
    sim.advance(60)
    output = _sync("--once")
    assert "team: 3 calls (list 3); created 0, updated 2" in output  # refresh, queued, the window's total
    assert "full sweep" not in output


def test_it_forces_a_full_sweep(sim, account):
    sim.add_task(kind="video", status="succeeded")
    _sync("--once")
    assert "full sweep" in _sync("--once", "--full-sweep")


def test_it_syncs_only_the_named_account(sim, account):
    other = Account(name="other", base_url="http://arksim.test/api/v3")
    other.set_api_key("test-key")
    other.save()
    sim.add_task(kind="video", status="queued")
    output = _sync("--once", "--account", "other")
    assert output.startswith("other:") and "team:" not in output
    assert Task.objects.filter(account=other).count() == 1
    assert not Task.objects.filter(account=account).exists()


def test_it_refuses_an_unknown_account_by_name(sim, account):
    with pytest.raises(CommandError, match="no account named 'nope' \\(accounts: team\\)"):
        _sync("--once", "--account", "nope")


def test_it_says_when_there_is_nothing_to_sync(db, settings):
    settings.ARK_API_KEY = ""
    with pytest.raises(CommandError, match="set ARK_API_KEY"):
        _sync("--once")


def test_it_syncs_the_default_account_from_ark_api_key(sim, db, settings):
    settings.ARK_API_KEY = "test-key"
    settings.ARK_BASE_URL = "http://arksim.test/api/v3"
    sim.add_task(kind="3d", status="succeeded")
    output = _sync("--once")
    assert output.startswith("default:") and "created 1" in output
    assert "test-key" not in output


def test_it_exits_non_zero_when_the_cycle_fails(sim, account):
    sim.faults.inject("*", "500", times=100)
    out = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("sync", "--once", stdout=out)
    assert exit_info.value.code == 1
    assert "FAILED" in out.getvalue() and "500" in out.getvalue()


@pytest.mark.parametrize("args", [("--wait", "-1"), ("--interval", "0")])
def test_it_rejects_nonsense_options(sim, account, args):
    with pytest.raises(CommandError):
        _sync("--once", *args)
