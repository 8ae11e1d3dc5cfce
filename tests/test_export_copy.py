"""The CSV export on PostgreSQL, written by the database (COPY): the same bytes as the Python
writer, the list's filters passed as parameters, and a connection fit for the next request
after an error or a closed download."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
from django.db import DatabaseError, connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks_app import exports_pg, selectors, views_export
from tasks_app.filters import TaskFilter
from tasks_app.models import (
    Account,
    ArchiveState,
    Artifact,
    ArtifactOutput,
    ArtifactState,
    TaskKind,
    TaskStatus,
)

from .dashboard_helpers import make_task, member_of

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

BOM = b"\xef\xbb\xbf"
NOW = datetime(2026, 11, 30, 12, 0, 0, 250000, tzinfo=UTC)


@pytest.fixture
def member_of_two(django_user_model, account):
    """A member of `account` ("team") and of an account with a Chinese name, a comma and quotes."""
    chinese = Account(name='数据团队, "甲"', base_url="http://arksim.test/api/v3")
    chinese.set_api_key("k")
    chinese.save()
    user = django_user_model.objects.create_user("wen", password="pw")
    member_of(user, account)
    member_of(user, chinese)
    return user


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def archived(task, output, **fields):
    values = {"state": ArtifactState.ARCHIVED, "size": 1234, "sha256": "ab" * 32, "archived_at": NOW, **fields}
    return Artifact.objects.create(task=task, output=output, **values)


@pytest.fixture
def awkward(account, member_of_two):
    """Tasks with everything that formats differently: microseconds, DST edges, a local mean time
    offset with seconds, null times, half seconds of run time, quotes, commas and newlines,
    missing, pending and archived outputs."""
    chinese = Account.objects.get(name__startswith="数据团队")
    # New York springs forward at 07:00 UTC on 2026-03-08: one -05:00, one -04:00.
    video = make_task(account, status=TaskStatus.SUCCEEDED, created=at("2026-03-08T06:59:59.123456"),
                      ark_updated_at=at("2026-03-08T07:00:01.623456"), finished_at=at("2026-03-08T07:00:01.623456"),
                      total_tokens=108900, archive_state=ArchiveState.ARCHIVED)  # run 2.5 s: rounds to 2
    archived(video, ArtifactOutput.VIDEO)
    Artifact.objects.create(task=video, output=ArtifactOutput.LAST_FRAME, state=ArtifactState.PENDING)
    make_task(account, status=TaskStatus.FAILED, created=at("2026-11-01T05:59:58"), model='m,"x"',
              finished_at=at("2026-11-01T06:00:01.5"), ark_updated_at=None,  # run 3.5 s: rounds to 4
              error_code='Bad "input", see\nthe log\r\nplease')
    make_task(account, status=TaskStatus.QUEUED, created=at("2026-11-20T00:00:00"), ark_updated_at=None)
    make_task(account, status=TaskStatus.RUNNING, created=at("2026-11-30T11:00:00"),
              started_at=at("2026-11-30T11:00:07.75"))  # runs until NOW
    make_task(account, status=TaskStatus.RUNNING, created=at("2026-11-29T10:00:00"),
              started_at=at("2026-11-29T10:00:01"), gone_upstream_at=at("2026-11-29T10:30:00.5"))
    make_task(account, status=TaskStatus.EXPIRED, created=at("2026-11-28T10:00:00"),
              started_at=at("2026-11-28T10:00:05"), ark_updated_at=None)  # no end: no run time
    make_task(account, status=TaskStatus.SUCCEEDED, created=at("2026-11-27T10:00:00"),
              started_at=at("2026-11-27T10:05:00"), finished_at=at("2026-11-27T10:01:00"))  # ends first: 0
    model = make_task(chinese, status=TaskStatus.SUCCEEDED, kind=TaskKind.MODEL_3D, model="模型-甲",
                      created=datetime(1900, 1, 1, 0, 0, tzinfo=UTC),  # Shanghai then: +08:05:43
                      finished_at=datetime(1900, 1, 1, 0, 1, tzinfo=UTC), total_tokens=None,
                      archive_state=ArchiveState.ARCHIVED)
    archived(model, ArtifactOutput.MODEL_ZIP)
    archived(model, ArtifactOutput.MODEL_FILE, size=None, sha256="")
    Artifact.objects.create(task=make_task(chinese, status=TaskStatus.SUCCEEDED, created=at("2026-07-01T12:00:00")),
                            output=ArtifactOutput.VIDEO, state=ArtifactState.FAILED, size=99, sha256="cd" * 32)
    make_task(account, status=TaskStatus.QUEUED, model="x' OR '1'='1")


def export_csv(client, query: str, zone: str | None) -> bytes:
    if zone:
        client.cookies["arkdash_tz"] = zone
    else:
        client.cookies.pop("arkdash_tz", None)
    response = client.get(f"/tasks/export.csv?{query}")
    assert response.status_code == 200
    return b"".join(response.streaming_content)


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York", "Asia/Kolkata", "Africa/Monrovia", None])
@pytest.mark.parametrize("query", ["", "sort=updated", "sort=-updated&status=running&status=failed", "kind=3d"])
def test_the_database_writes_the_same_bytes_as_python(awkward, member_of_two, client, monkeypatch, zone, query):
    assert views_export.database_writes_csv("default", ZoneInfo(zone or "UTC"))
    monkeypatch.setattr(timezone, "now", lambda: NOW)  # the running task's run time, the same both ways
    client.force_login(member_of_two)
    by_database = export_csv(client, query, zone)
    monkeypatch.setattr(views_export, "database_writes_csv", lambda using, zone: False)
    by_python = export_csv(client, query, zone)
    assert by_database == by_python
    assert by_database.startswith(BOM)
    rows = list(csv.DictReader(io.StringIO(by_database[len(BOM):].decode())))
    assert rows  # every one of these queries matches some rows
    if query == "" and zone == "Asia/Shanghai":  # what the comparison covers, stated once
        by_model = {row["model"]: row for row in rows}
        assert by_model["模型-甲"]["created"] == "1900-01-01T08:05:43+08:05:43"
        assert by_model["模型-甲"]["account"] == '数据团队, "甲"'
        assert by_model["模型-甲"]["model_file_url"].startswith("http://testserver/outputs/")
        assert by_model["模型-甲"]["model_file_size"] == by_model["模型-甲"]["model_file_sha256"] == ""
        assert by_model['m,"x"']["error_code"] == 'Bad "input", see\nthe log\r\nplease'
        assert by_model['m,"x"']["run_time_seconds"] == "4" and by_model['m,"x"']["updated"] == ""
        video = next(row for row in rows if row["video_sha256"] == "ab" * 32)
        assert video["run_time_seconds"] == "2" and video["created"] == "2026-03-08T14:59:59.123456+08:00"
        assert video["last_frame_size"] == video["last_frame_url"] == ""
        failed_output = next(row for row in rows if row["video_sha256"] == "cd" * 32)
        assert failed_output["video_size"] == "99" and failed_output["video_url"] == ""
        running = [row for row in rows if row["status"] == "running"]
        assert sorted(row["run_time_seconds"] for row in running) == ["1800", "3592"]  # 1799.5 and 3592.5, half to even
    if query == "" and zone == "America/New_York":
        video = next(row for row in rows if row["video_sha256"] == "ab" * 32)
        assert (video["created"], video["updated"]) == ("2026-03-08T01:59:59.123456-05:00",
                                                        "2026-03-08T03:00:01.623456-04:00")


def test_python_writes_the_csv_in_a_zone_postgresql_does_not_know():
    assert exports_pg.zone_name(ZoneInfo("Asia/Shanghai"), using="default") == "Asia/Shanghai"
    assert exports_pg._postgres_knows_zone("default", "Mars/Olympus_Mons") is False
    assert not views_export.database_writes_csv("default", dt_timezone(timedelta(hours=8)))  # no name


def test_it_passes_the_filters_as_parameters(awkward, member_of_two, client):
    client.force_login(member_of_two)
    body = export_csv(client, "model=x%27%20OR%20%271%27%3D%271", "Asia/Shanghai")
    [row] = csv.DictReader(io.StringIO(body[len(BOM):].decode()))
    assert row["model"] == "x' OR '1'='1"
    assert export_csv(client, "model=%27%3B%20DROP%20TABLE%20tasks_app_task%3B%20--", None) == (
        BOM + (",".join(views_export.COLUMNS) + "\r\n").encode()
    )


def test_it_exports_nothing_to_a_user_of_another_account(awkward, client, django_user_model):
    stranger = django_user_model.objects.create_user("bo", password="pw")
    member_of(stranger, Account.objects.create(name="empty", base_url="http://arksim.test/api/v3",
                                               api_key_encrypted=""))
    client.force_login(stranger)
    assert export_csv(client, "", "Asia/Shanghai") == BOM + (",".join(views_export.COLUMNS) + "\r\n").encode()


def repeated(times: int):
    """export_select, each row `times` times: more than the socket's buffers hold."""
    original = exports_pg.export_select

    def select(export):
        sql, params = original(export)
        return f"SELECT e.* FROM ({sql}) AS e CROSS JOIN generate_series(1, {times})", params

    return select


def failing_after(rows: int):
    """export_select, with a column that divides by zero on row `rows` + 1."""
    original = exports_pg.export_select

    def select(export):
        sql, params = original(export)
        return f"SELECT e.*, 1 / (row_number() OVER () - {rows + 1}) FROM ({sql}) AS e", params

    return select


IN_A_TRANSACTION_OR_NOT = [
    pytest.param(False, id="inside the test's transaction"),
    pytest.param(True, marks=pytest.mark.django_db(transaction=True), id="autocommit, as served"),
]


def assert_fit_for_the_next_query(autocommit: bool) -> None:
    if autocommit:
        assert connection.in_atomic_block is False and connection.get_autocommit()
    else:
        assert connection.in_atomic_block and not connection.needs_rollback


@pytest.mark.parametrize("autocommit", IN_A_TRANSACTION_OR_NOT)
def test_a_database_error_mid_stream_leaves_the_connection_fit_for_the_next_request(awkward, member_of_two, client,
                                                                                     monkeypatch, autocommit):
    client.force_login(member_of_two)
    monkeypatch.setattr(exports_pg, "export_select", failing_after(3))
    response = client.get("/tasks/export.csv")
    with pytest.raises(DatabaseError, match="division by zero"):
        b"".join(response.streaming_content)
    assert_fit_for_the_next_query(autocommit)  # the test client closed the response
    monkeypatch.undo()
    client.force_login(member_of_two)
    rows = list(csv.DictReader(io.StringIO(export_csv(client, "", None)[len(BOM):].decode())))
    assert len(rows) == 10


@pytest.mark.parametrize("autocommit", IN_A_TRANSACTION_OR_NOT)
def test_a_download_closed_early_leaves_the_connection_fit_for_the_next_request(awkward, member_of_two, client,
                                                                                 monkeypatch, autocommit):
    # The COPY still running when the download closes: PostgreSQL is told to stop.
    monkeypatch.setattr(exports_pg, "export_select", repeated(100_000))
    filterset = TaskFilter(data=QueryDict(""), queryset=selectors.access_for(member_of_two).tasks())
    assert filterset.is_valid()
    export = exports_pg.CopyExport(filterset=filterset, account_names={}, url_head="http://testserver/outputs",
                                   url_tail="download/", zone_name="UTC", now=NOW)
    pieces = exports_pg.copy_pieces(export, using="default")
    assert next(pieces).endswith(b"\r\n")  # the first piece
    pieces.close()  # as a server closes the response when the client goes away
    assert_fit_for_the_next_query(autocommit)
    monkeypatch.undo()
    client.force_login(member_of_two)
    rows = list(csv.DictReader(io.StringIO(export_csv(client, "", None)[len(BOM):].decode())))
    assert len(rows) == 10


def test_it_reads_every_row_in_one_copy_statement(awkward, member_of_two, client, monkeypatch):
    statements = []
    original = exports_pg.copy_statement
    monkeypatch.setattr(exports_pg, "copy_statement", lambda export: statements.append(original(export)) or
                        statements[-1])
    client.force_login(member_of_two)
    with CaptureQueriesContext(connection) as queries:
        body = export_csv(client, "", "America/New_York")
    assert len(list(csv.DictReader(io.StringIO(body[len(BOM):].decode())))) == 10
    [(sql, _params)] = statements
    assert sql.startswith("COPY (SELECT ") and sql.endswith(") TO STDOUT WITH (FORMAT csv)")
    # the other queries (session, user, memberships, accounts, savepoint) read no task
    assert not [query for query in queries.captured_queries if '"tasks_app_task"' in query["sql"]]


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        ([b"a,b\n", b"c,d\n"], b"a,b\r\nc,d\r\n"),
        ([b'a,"x\ny"\n', b'"q""\n', b'r",s\n'], b'a,"x\ny"\r\n"q""\nr",s\r\n'),  # a field across pieces
    ],
)
def test_records_end_in_crlf_and_newlines_inside_fields_stay(pieces, expected):
    assert b"".join(exports_pg.crlf_records(pieces)) == expected
