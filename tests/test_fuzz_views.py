"""Property-based fuzzing of every view's query and form parameters: thousands of requests, no 500.

Each view gets its own known parameters plus random ones, with values from a mix of
plausible, hostile (NUL, huge numbers, markup, SQL, path tricks) and random text, and raw
query strings of arbitrary bytes (invalid UTF-8 included). The Django test client
re-raises any exception a view lets through, so "no exception" is checked as well as
"no 5xx". Redirects must stay on this site (no open redirect through `next`).
"""

from __future__ import annotations

import json
from urllib.parse import quote, quote_from_bytes

import pytest
from django.test import Client
from django.utils.http import url_has_allowed_host_and_scheme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app.models import Artifact, ArtifactState, MembershipRole, Task
from tasks_app.services.sync import sync_account

from .dashboard_helpers import member_of


def fuzz(examples: int) -> settings:
    # No example database: each run explores afresh; deadline off, a request may take a while.
    return settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)


HOSTILE = [
    "", " ", "\x00", "a\x00b", "%00", "\n", "\r\n", "0", "-1", "1.5", "1e309", "NaN", "Infinity",
    "99999999999999999999999999", "-99999999999999999999", "9223372036854775808", "2025-01-01",
    "2025-13-40T25:61", "2025-03-31T17:50:19+08:00", "0000-00-00", "queued", "running", "succeeded", "failed",
    "expired", "cancelled", "video", "3d", "archived", "pending", "lost", "-created", "created", "-updated",
    "cgt-20250331175019-68d9t", "cgt-", "cgt-" + "a" * 70, "<script>alert(1)</script>", "' OR 1=1 --",
    "../../etc/passwd", "//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)",
    "\u202e\u0000\ud7ff", "😀" * 20, "a" * 5000, ",".join(["cgt-20250331175019-x"] * 600), "1.1,2.2,abc",
    "1" * 19 + "." + "2" * 21,
]
values = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=60), st.integers().map(str))


def params(names: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Known parameter names (repeated at will) and a few made-up ones."""
    name = st.one_of(st.sampled_from(names), st.text(min_size=1, max_size=12))
    return st.lists(st.tuples(name, values), max_size=8)


raw_query = st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=30)), max_size=5).map(
    lambda pairs: "&".join(f"{quote_from_bytes(k)}={quote_from_bytes(v)}" for k, v in pairs)
)


def encode(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def as_form(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    form: dict[str, list[str]] = {}
    for key, value in pairs:
        form.setdefault(key, []).append(value)
    return form


def check(response, where: str) -> None:
    assert response.status_code < 500, f"{where}: {response.status_code}"
    if 300 <= response.status_code < 400 and response.has_header("Location"):
        location = response["Location"]
        assert url_has_allowed_host_and_scheme(location, allowed_hosts={"testserver"}), f"{where}: {location}"
    if response.streaming:
        b"".join(response.streaming_content)


@pytest.fixture
def world(sim, account, django_user_model, local_archive):
    """An operator and a superuser, tasks in several states, one archived output on disk."""
    operator = django_user_model.objects.create_user("op", password="pw")
    member_of(operator, account, MembershipRole.OPERATOR)
    root = django_user_model.objects.create_superuser("root", password="pw")
    for spec in ({"status": "running"}, {"status": "succeeded"}, {"status": "failed"}, {"status": "queued"}):
        sim.add_task(**spec)
    sync_account(account=account, full_sweep=True)
    succeeded = Task.objects.get(status="succeeded")
    artifact = Artifact.objects.create(task=succeeded, output="video", state=ArtifactState.ARCHIVED,
                                       storage_key="tasks/fuzz/video.mp4", filename="video.mp4", size=1000)
    path = local_archive.root / artifact.storage_key
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(range(256)) * 4)
    op_client, root_client = Client(), Client()
    op_client.force_login(operator)
    root_client.force_login(root)
    pks = list(Task.objects.values_list("pk", flat=True))
    return {"op": op_client, "root": root_client, "pks": pks, "artifact": artifact, "account": account}


def pk_values(world: dict) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(world["pks"]), st.integers(min_value=0, max_value=10**30))


LIST_PARAMS = ["status", "kind", "model", "ids", "created_after", "created_before", "archive", "sort", "after",
               "before", "page_size"]
# Dates at the ends of the calendar, where a zone's offset pushes UTC past year 1 or 9999.
EDGE_DATES = st.builds(
    lambda year, rest: f"{year:04d}-{rest}",
    st.sampled_from([1, 2, 1969, 1970, 9998, 9999]),
    st.sampled_from(["01-01T00:00", "01-01T08:59", "12-31T23:59", "12-31T15:00", "06-15T12:00", "01-01", "12-31"]),
)
ZONES = st.sampled_from(["UTC", "America/Los_Angeles", "Asia/Tokyo", "Pacific/Kiritimati", "Pacific/Pago_Pago",
                         "Asia/Shanghai", "not/a-zone"])
# Cursors: well-formed, at the edges of what fits, and almost-well-formed garbage.
CURSORS = st.one_of(
    st.builds(lambda micros, pk: f"{micros}.{pk}", st.integers(-(10**17) + 1, 10**17 - 1), st.integers(0, 10**18 - 1)),
    st.builds(lambda pk: f"n.{pk}", st.integers(0, 10**19)),
    st.from_regex(r"-?[0-9n.]{0,45}", fullmatch=True),
)


@pytest.mark.slow
def test_it_survives_any_list_query(world):
    @fuzz(500)
    @given(pairs=params(LIST_PARAMS), raw=raw_query, htmx=st.booleans())
    def run(pairs, raw, htmx):
        query = encode(pairs) + ("&" + raw if raw else "")
        headers = {"HX-Request": "true"} if htmx else {}
        check(world["op"].get(f"/?{query}", headers=headers), f"list ?{query}")

    run()


@pytest.mark.slow
def test_it_survives_calendar_edge_dates_in_any_zone_and_any_cursor(world):
    @fuzz(300)
    @given(after=EDGE_DATES, before=EDGE_DATES, zone=ZONES, cursor=CURSORS, direction=st.sampled_from(["after", "before"]),
           bulk=st.booleans())
    def run(after, before, zone, cursor, direction, bulk):
        client = world["op"]
        client.cookies["arkdash_tz"] = zone
        query = encode([("created_after", after), ("created_before", before), (direction, cursor)])
        if bulk:
            check(client.post(f"/tasks/cancel/?{query}", {"scope": "matching"}), f"bulk ?{query} in {zone}")
        else:
            check(client.get(f"/?{query}"), f"list ?{query} in {zone}")
            check(client.get(f"/tasks/rows/?{query}&newest={cursor}&seen={cursor.split('.')[0]}"), f"poll ?{query}")

    run()


@pytest.mark.slow
def test_it_survives_any_poll_and_detail_request(world):
    @fuzz(500)
    @given(pairs=params(["rows", "health", "seen", "newest", "counts", "slide", *LIST_PARAMS]), raw=raw_query,
           pk=pk_values(world), which=st.booleans())
    def run(pairs, raw, pk, which):
        if which:
            rows = [(key, value) for key, value in pairs] + [("rows", f"{pk}.{abs(hash(raw)) % 10**20}")]
            check(world["op"].get(f"/tasks/rows/?{encode(rows)}&{raw}"), f"poll {rows}")
        else:
            check(world["op"].get(f"/tasks/{pk}/?{encode(pairs)}&{raw}"), f"detail {pk}")

    run()


@pytest.mark.slow
def test_it_survives_any_action_request(world):
    @fuzz(500)
    @given(pairs=params(["next", "confirm_unarchived", "remove_local"]), pk=pk_values(world),
           action=st.sampled_from(["cancel", "delete"]), method=st.sampled_from(["get", "post"]),
           htmx=st.booleans(), who=st.sampled_from(["op", "root"]))
    def run(pairs, pk, action, method, htmx, who):
        headers = {"HX-Request": "true", "HX-Current-URL": "http://testserver/"} if htmx else {}
        client = world[who]
        url = f"/tasks/{pk}/{action}/"
        if method == "get":
            response = client.get(f"{url}?{encode(pairs)}", headers=headers)
        else:
            response = client.post(url, as_form(pairs), headers=headers)
        check(response, f"{method} {url} {pairs}")

    run()


@pytest.mark.slow
def test_it_survives_any_bulk_cancel(world):
    @fuzz(300)
    @given(query=params(LIST_PARAMS), form=params(["scope", "ids", "confirmed"]), raw=raw_query)
    def run(query, form, raw):
        response = world["op"].post(f"/tasks/cancel/?{encode(query)}&{raw}", as_form(form))
        check(response, f"bulk {query} {form}")

    run()


@pytest.mark.slow
def test_it_survives_any_download_request(world):
    artifact = world["artifact"]
    ranges = st.one_of(
        st.sampled_from(["bytes=0-0", "bytes=0-", "bytes=-1", "bytes=1023-", "bytes=1024-", "bytes=5-2",
                         "bytes=0-1,5-9", "bytes=-0", "bytes=--1", "items=0-1", "bytes=99999999999999999999-"]),
        st.text(max_size=30).map(lambda text: "bytes=" + text),
        values,
    )

    @fuzz(300)
    @given(pairs=params(["inline"]), range_=ranges, etag=values, pk=st.one_of(st.just(artifact.pk), pk_values(world)))
    def run(pairs, range_, etag, pk):
        headers = {"Range": range_, "If-None-Match": etag, "If-Range": etag}
        response = world["op"].get(f"/outputs/{pk}/download/?{encode(pairs)}", headers=_latin1(headers))
        check(response, f"download {pk} {headers}")

    run()


# Range values: offsets of any length (Python refuses to parse more than 4,300 digits),
# leading zeros, missing halves, several ranges, stray spaces and other units.
_digits = st.one_of(st.just(""), st.integers(min_value=0, max_value=2**70).map(str),
                    st.text(alphabet="0123456789", min_size=4290, max_size=9000),
                    st.integers(min_value=0, max_value=5).map(lambda n: "0" * 30 + str(n)))
range_values = st.one_of(
    st.builds(lambda unit, a, b, space: f"{unit}={space}{a}{space}-{space}{b}", st.sampled_from(["bytes", "BYTES", "items"]),
              _digits, _digits, st.sampled_from(["", " "])),
    st.lists(st.builds(lambda a, b: f"{a}-{b}", _digits, _digits), min_size=2, max_size=3).map(
        lambda parts: "bytes=" + ",".join(parts)),
)


@pytest.mark.slow
def test_it_survives_any_range_value(world):
    artifact = world["artifact"]

    @fuzz(300)
    @given(range_=range_values, method=st.sampled_from(["get", "head"]), if_range=st.sampled_from(["", '"x"']))
    def run(range_, method, if_range):
        headers = {"Range": range_, **({"If-Range": if_range} if if_range else {})}
        response = getattr(world["op"], method)(f"/outputs/{artifact.pk}/download/", headers=headers)
        check(response, f"download {method} Range {range_[:80]!r}… ({len(range_)} chars)")
        assert response.status_code in (200, 206, 416), range_[:80]

    run()


def _latin1(headers: dict[str, str]) -> dict[str, str]:
    """HTTP header values travel as latin-1: what a real client could send."""
    return {name: value.encode("latin-1", "replace").decode("latin-1").replace("\n", " ").replace("\r", " ")
            for name, value in headers.items()}


@pytest.mark.slow
def test_it_survives_any_callback(world):
    secret = world["account"].callback_secret
    bodies = st.one_of(
        st.binary(max_size=200),
        st.dictionaries(st.sampled_from(["id", "status", "model"]), values).map(lambda d: json.dumps(d).encode()),
        st.recursive(st.none() | st.integers() | st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                  max_size=3),
                     max_leaves=10).map(lambda d: json.dumps(d).encode()),
    )

    @fuzz(300)
    @given(body=bodies, path_secret=st.one_of(st.just(secret), st.text(min_size=1, max_size=80)),
           content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]))
    def run(body, path_secret, content_type):
        url = f"/hooks/ark/{quote(path_secret, safe='')}/"
        check(Client().post(url, data=body, content_type=content_type), f"callback {url} {body!r}")

    run()


@pytest.mark.slow
def test_it_survives_any_login_language_and_machine_endpoint_request(world):
    @fuzz(300)
    @given(pairs=params(["username", "password", "next", "language", "csrfmiddlewaretoken"]), raw=raw_query,
           target=st.sampled_from(["/accounts/login/", "/i18n/setlang/", "/healthz", "/metrics",
                                   "/accounts/password_change/"]),
           method=st.sampled_from(["get", "post"]))
    def run(pairs, raw, target, method):
        client = world["op"] if target == "/accounts/password_change/" else Client()
        if method == "get":
            response = client.get(f"{target}?{encode(pairs)}&{raw}")
        else:
            response = client.post(f"{target}?{raw}", as_form(pairs))
        check(response, f"{method} {target} {pairs}")

    run()


ADMIN_LISTS = ["/admin/tasks_app/account/", "/admin/tasks_app/membership/", "/admin/tasks_app/auditentry/",
               "/admin/auth/user/", "/admin/axes/accessattempt/"]
ADMIN_PARAMS = ["q", "o", "p", "e", "action__exact", "result__exact", "account__id__exact", "user__id__exact",
                "created__gte", "created__lt", "created__year", "created__month", "created__day", "role__exact",
                "_changelist_filters", "all"]


@pytest.mark.slow
def test_it_survives_any_admin_request(world):
    @fuzz(300)
    @given(pairs=params(ADMIN_PARAMS), target=st.sampled_from(ADMIN_LISTS), form=params(
        ["name", "base_url", "api_key", "memberships-TOTAL_FORMS", "memberships-INITIAL_FORMS",
         "memberships-0-user", "memberships-0-role"]), add=st.booleans())
    def run(pairs, target, form, add):
        if add:
            response = world["root"].post("/admin/tasks_app/account/add/", as_form(form))
        else:
            response = world["root"].get(f"{target}?{encode(pairs)}")
        check(response, f"admin {target} {pairs} {form}")

    run()
