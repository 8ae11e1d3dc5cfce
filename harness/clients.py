"""HTTP clients the harness drives the system with: a signed-in dashboard user, and the
simulator (its Ark API with the key, and its /_sim/ control plane).

They speak HTTP only, like a person's browser and a team's own scripts would, so the
code under test is exactly what runs in production.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

TIMEOUT = httpx.Timeout(20.0, connect=5.0)
_ROW = re.compile(
    r'<tr id="task-(?P<pk>\d+)" class="row row-(?P<status>\w+)" data-version="(?P<version>\d+)"(?P<live> data-live)?'
)
_ARK_ID = re.compile(r"<code>(?P<ark_id>[^<]+)</code>")
_ARCHIVE = re.compile(r'class="archive archive-(?P<state>\w+)"')
MAX_PAGES = 100
_OLDER = re.compile(r'<a class="btn btn-small" href="(?P<href>\?[^"]*)" rel="next">')
_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="(?P<token>[^"]+)"')


@dataclass(frozen=True)
class Row:
    """One task row as the dashboard renders it."""

    pk: int
    ark_id: str
    status: str
    version: int
    live: bool
    archive_state: str


def parse_rows(page: str) -> list[Row]:
    rows = []
    matches = list(_ROW.finditer(page))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(page)
        body = page[match.end() : end].split("</tr>", 1)[0]
        ark_id = _ARK_ID.search(body)
        archive = _ARCHIVE.search(body)
        rows.append(
            Row(
                pk=int(match["pk"]),
                ark_id=html.unescape(ark_id["ark_id"]) if ark_id else "",
                status=match["status"],
                version=int(match["version"]),
                live=bool(match["live"]),
                archive_state=archive["state"] if archive else "",
            )
        )
    return rows


class DashboardError(Exception):
    pass


class Dashboard:
    """A person using ArkDash through gunicorn: a session cookie and CSRF, no shortcuts."""

    def __init__(self, base_url: str, *, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.username, self.password = username, password
        self.http = httpx.Client(base_url=self.base_url, timeout=TIMEOUT, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def login(self) -> None:
        form = self.http.get("/accounts/login/")
        form.raise_for_status()
        token = _CSRF_INPUT.search(form.text)
        if token is None:
            raise DashboardError("the login page has no CSRF token")
        answer = self.http.post(
            "/accounts/login/",
            data={
                "username": self.username,
                "password": self.password,
                "csrfmiddlewaretoken": token["token"],
            },
        )
        if answer.status_code != 302:
            raise DashboardError(f"login failed: HTTP {answer.status_code}")

    @property
    def csrf_token(self) -> str:
        return self.http.cookies.get("csrftoken", "")

    def task_page(self, **params: Any) -> httpx.Response:
        return self.http.get("/", params={"page_size": 200, **params})

    def rows(self, **params: Any) -> list[Row]:
        """Every task row matching the filter, following the pager's "Older" links."""
        rows: list[Row] = []
        answer = self.task_page(**params)
        for _ in range(MAX_PAGES):
            if answer.status_code != 200:
                raise DashboardError(f"task list answered HTTP {answer.status_code}")
            rows.extend(parse_rows(answer.text))
            older = _OLDER.search(answer.text)
            if older is None:
                return rows
            answer = self.http.get("/" + html.unescape(older["href"]))
        return rows

    def poll(self, rows: list[Row], *, health: str = "ok") -> tuple[int, list[Row]]:
        """The page's live poll: (status code, rows that changed since `rows`)."""
        answer = self.http.get(
            "/tasks/rows/",
            params={"rows": ",".join(f"{row.pk}.{row.version}" for row in rows), "health": health},
            headers={"HX-Request": "true"},
        )
        if answer.status_code == 204:
            return 204, []
        return answer.status_code, parse_rows(answer.text)

    def cancel(self, pk: int) -> httpx.Response:
        """The Cancel button without JavaScript: a POST with the CSRF token, answered by a redirect."""
        return self.http.post(
            f"/tasks/{pk}/cancel/",
            data={"csrfmiddlewaretoken": self.csrf_token},
            headers={"Referer": f"{self.base_url}/"},
        )


class SimControl:
    """The simulator over HTTP: Ark's API (with the key) and the /_sim/ control plane."""

    VIDEO_MODEL = "doubao-seedance-1-0-pro-250528"
    MODEL_3D = "doubao-seed3d-1-0-250928"

    def __init__(self, url: str, *, api_key: str) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=TIMEOUT)
        self.api_key = api_key

    def close(self) -> None:
        self.http.close()

    def _json(self, answer: httpx.Response) -> Any:
        if answer.status_code >= 400:
            raise RuntimeError(f"simulator answered HTTP {answer.status_code}: {answer.text[:300]}")
        return answer.json()

    # Ark's API, as a team's own script would call it: it shares the account's rate
    # budget with ArkDash, so it waits out a 429 like a polite script does, and a read
    # is simply repeated after a 5xx or a broken connection.
    def _ark(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        url = f"/api/v3/contents/generations/tasks{path}"
        for _attempt in range(20):
            try:
                answer = self.http.request(method, url, headers=headers, **kwargs)
                if answer.status_code == 429:
                    time.sleep(float(answer.headers.get("Retry-After", "1") or 1))
                    continue
                if method != "GET" or answer.status_code < 500:
                    return self._json(answer)
            except httpx.TransportError:
                if method != "GET":
                    raise
            time.sleep(0.5)
        raise RuntimeError(f"simulator: {method} {url} kept failing")

    def create_task(self, *, kind: str, prompt: str = "a red panda on a bicycle") -> str:
        if kind == "3d":
            body = {
                "model": self.MODEL_3D,
                "content": [{"type": "image_url", "image_url": {"url": "https://example.com/chair.png"}}],
            }
        else:
            body = {
                "model": self.VIDEO_MODEL,
                "content": [{"type": "text", "text": prompt}],
                "return_last_frame": True,
            }
        return self._ark("POST", "", json=body)["id"]

    def get_task(self, task_id: str) -> dict:
        return self._ark("GET", f"/{task_id}")

    def statuses(self, task_ids: list[str]) -> dict[str, str]:
        """Ark's status of each task, 500 ids per list call (list allows ~1 call/s)."""
        found: dict[str, str] = {}
        for start in range(0, len(task_ids), 500):
            batch = task_ids[start : start + 500]
            params = [("page_size", 500), *(("filter.task_ids", task_id) for task_id in batch)]
            for item in self._ark("GET", "", params=params)["items"]:
                found[item["id"]] = item["status"]
        return found

    # The control plane.
    def add_task(self, **fields: Any) -> str:
        return self._json(self.http.post("/_sim/tasks", json=fields))["id"]

    def advance(self, seconds: float) -> float:
        return self._json(self.http.post("/_sim/clock", json={"advance": seconds}))["now"]

    def stats(self) -> dict[str, int]:
        return self._json(self.http.get("/_sim/stats"))

    def reset_stats(self) -> dict[str, int]:
        return self._json(self.http.post("/_sim/stats/reset"))

    def inject(self, endpoint: str, kind: str, **options: Any) -> None:
        self._json(self.http.post("/_sim/faults", json={"endpoint": endpoint, "kind": kind, **options}))

    def pending_faults(self) -> list[dict]:
        return self._json(self.http.get("/_sim/faults"))["faults"]

    def clear_faults(self) -> None:
        self._json(self.http.delete("/_sim/faults"))

    def outputs(self, task_id: str) -> dict[str, dict[str, Any]]:
        """{output: {sha256, size, url}} for a succeeded task."""
        return self._json(self.http.get(f"/_sim/tasks/{task_id}/outputs"))
