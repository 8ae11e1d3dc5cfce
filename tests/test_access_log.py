"""gunicorn's access log never holds an account's callback secret (arkdash/access_log.py)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from gunicorn.config import Config

from arkdash import access_log

SECRET = "Zq3-very-secret_Token"


def logged_line(tmp_path, logger_class, path: str, referer: str = "-") -> str:
    config = Config()
    config.set("accesslog", str(tmp_path / "access.log"))
    logger = logger_class(config)
    response = SimpleNamespace(status="404 Not Found", headers=[("Content-Type", "application/json")], sent=22)
    request = SimpleNamespace(headers=[("REFERER", referer)])
    route, _, query = path.partition("?")
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": path, "PATH_INFO": route, "QUERY_STRING": query,
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.7", "HTTP_REFERER": referer}  # fmt: skip
    logger.access(response, request, environ, timedelta(milliseconds=3))
    for handler in logger.access_log.handlers:
        handler.flush()
    return (tmp_path / "access.log").read_text()


def test_the_callback_secret_is_left_out_of_every_access_line(tmp_path):
    line = logged_line(tmp_path, access_log.Logger, f"/hooks/ark/{SECRET}/?x=1", referer=f"https://a.example/hooks/ark/{SECRET}/")
    assert SECRET not in line
    assert '"POST /hooks/ark/[secret]/?x=1 HTTP/1.1" 404 22' in line
    assert "https://a.example/hooks/ark/[secret]/" in line


def test_other_paths_are_logged_as_they_are(tmp_path):
    line = logged_line(tmp_path, access_log.Logger, "/tasks/rows/?rows=1.2")
    assert '"POST /tasks/rows/?rows=1.2 HTTP/1.1" 404 22' in line


def test_gunicorns_own_logger_would_have_logged_it(tmp_path):
    """The check above can fail: without the class, the secret is in the line."""
    from gunicorn.glogging import Logger

    assert SECRET in logged_line(tmp_path, Logger, f"/hooks/ark/{SECRET}/")
