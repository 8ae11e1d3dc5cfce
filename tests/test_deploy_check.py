"""`manage.py check --deploy` under production settings: no warning at all (run in CI)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The real settings module with docker-compose's security switches, nothing from the test run."""
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith(("ARKDASH_", "DJANGO_", "ARK_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="arkdash.settings",
        ARKDASH_DATA_DIR=str(tmp_path / "data"),
        ARKDASH_SECURE="true",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        ARKDASH_ALLOWED_HOSTS="arkdash.example.com",
        ARKDASH_DEBUG="false",
    )
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("proxies", ["", "172.28.0.10"])
def test_it_passes_the_deploy_check_without_a_warning(tmp_path, proxies):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                 production_env(tmp_path, ARKDASH_TRUSTED_PROXIES=proxies))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr + result.stdout


def test_it_fails_the_deploy_check_without_the_production_switch(tmp_path):
    # The same check, laptop defaults: proves the test above can fail.
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                 production_env(tmp_path, ARKDASH_SECURE="false"))
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr + result.stdout


PRINT_SETTINGS = """
import django, json
django.setup()
from django.conf import settings as s
print(json.dumps({name: getattr(s, name, None) for name in (
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
    "SECURE_PROXY_SSL_HEADER", "X_FRAME_OPTIONS", "SESSION_COOKIE_HTTPONLY")}))
"""


def test_it_keeps_plain_http_working_on_a_laptop_by_default(tmp_path):
    env = production_env(tmp_path)
    for name in ("ARKDASH_SECURE", "DJANGO_SECRET_KEY", "ARKDASH_ALLOWED_HOSTS"):
        env.pop(name)
    laptop = json.loads(run(["-c", PRINT_SETTINGS], env).stdout)
    assert laptop == {
        "SESSION_COOKIE_SECURE": False, "CSRF_COOKIE_SECURE": False, "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0, "SECURE_PROXY_SSL_HEADER": None, "X_FRAME_OPTIONS": "DENY",
        "SESSION_COOKIE_HTTPONLY": True,
    }
    production = json.loads(run(["-c", PRINT_SETTINGS], production_env(tmp_path, ARKDASH_TRUSTED_PROXIES="10.0.0.2")).stdout)
    assert production["SESSION_COOKIE_SECURE"] and production["CSRF_COOKIE_SECURE"]
    assert production["SECURE_SSL_REDIRECT"] and production["SECURE_HSTS_SECONDS"] == 31_536_000
    assert production["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_it_refuses_to_start_with_the_old_switch_that_trusted_every_client(tmp_path):
    # ARKDASH_BEHIND_PROXY=true believed X-Forwarded-* from whoever reached the app.
    result = run(["-c", PRINT_SETTINGS], production_env(tmp_path, ARKDASH_BEHIND_PROXY="true"))
    assert result.returncode != 0
    assert "ARKDASH_TRUSTED_PROXIES" in result.stderr


def test_it_refuses_a_trusted_proxy_that_is_not_an_address(tmp_path):
    result = run(["-c", PRINT_SETTINGS], production_env(tmp_path, ARKDASH_TRUSTED_PROXIES="proxy.example"))
    assert result.returncode != 0
    assert "'proxy.example' is not an IP address or network" in result.stderr


def test_it_publishes_only_the_proxy_in_docker_compose():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}, published
    environment = compose["x-app"]["environment"]
    assert "ARKDASH_BEHIND_PROXY" not in environment
    proxy_address = services["proxy"]["networks"]["default"]["ipv4_address"]
    assert environment["ARKDASH_TRUSTED_PROXIES"] == f"${{ARKDASH_TRUSTED_PROXIES:-{proxy_address}}}"
    assert services["proxy"]["command"][-1] == "web:8000"


PRINT_CSP = """
import django, json
django.setup()
from django.conf import settings as s
print(json.dumps(s.CONTENT_SECURITY_POLICY["DIRECTIVES"]["media-src"]))
"""


def test_it_lists_no_loopback_in_the_production_content_security_policy(tmp_path):
    production = json.loads(run(["-c", PRINT_CSP], production_env(tmp_path)).stdout)
    assert not [source for source in production if "127.0.0.1" in source or "localhost" in source], production
    assert "*.volces.com" in production and "*.bytepluses.com" in production

    with_simulator = json.loads(
        run(["-c", PRINT_CSP], production_env(tmp_path, ARKDASH_SIMULATOR_URL="http://127.0.0.1:8765")).stdout)
    assert "127.0.0.1:8765" in with_simulator


def test_it_keeps_the_sqlite_database_readable_by_the_app_user_only(tmp_path):
    env = production_env(tmp_path)
    database = tmp_path / "data" / "arkdash.sqlite3"
    database.parent.mkdir()
    database.touch(mode=0o644)  # made by an older version, or by sqlite under a lax umask
    database.chmod(0o644)

    result = run(["manage.py", "migrate", "--noinput", "-v", "0"], env)

    assert result.returncode == 0, result.stderr
    assert oct(database.stat().st_mode & 0o777) == oct(0o600)
    grouped = run(["manage.py", "check"], {**env, "ARKDASH_FILE_MODE": "0640"})
    assert grouped.returncode == 0, grouped.stderr
    assert run(["manage.py", "check"], {**env, "ARKDASH_FILE_MODE": "0666"}).returncode != 0
