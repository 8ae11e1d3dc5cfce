"""Settings for the test run: the real PostgreSQL when it is reachable (always in CI)."""

from __future__ import annotations

import os
import tempfile

import dj_database_url

os.environ.setdefault("ARKDASH_DATA_DIR", tempfile.mkdtemp(prefix="arkdash-test-"))
# The in-process simulator's host, as `make run` declares its own: http base URL and
# outputs without a public address are allowed for it alone.
os.environ.setdefault("ARKDASH_SIMULATOR_URL", "http://arksim.test")
os.environ.pop("REDIS_URL", None)  # Celery stays on the embedded broker unless a test asks.

from arkdash.settings import *  # noqa: E402,F403

from .services import IN_CI, POSTGRES_URL, postgres_available  # noqa: E402

# ARKDASH_TEST_DATABASE=sqlite runs the suite on the laptop default (.ci/run does, too).
FORCE_SQLITE = os.environ.get("ARKDASH_TEST_DATABASE", "").lower() == "sqlite"

if not FORCE_SQLITE and (postgres_available() or IN_CI):
    DATABASES = {"default": dj_database_url.parse(POSTGRES_URL, conn_max_age=0)}
    DATABASES["default"]["OPTIONS"] = {"options": "-c random_page_cost=1.1"}  # as production
    # One test database per run, so parallel runs on one machine never collide.
    DATABASES["default"]["TEST"] = {"NAME": f"test_arkdash_{os.getpid()}"}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
ARK_BASE_URL = "http://arksim.test/api/v3"
ARK_API_KEY = ""
# The in-process simulator has no rate limit unless a test asks: the shared limiter must
# not make unrelated tests wait. Tests of the budget set their own rates.
ARK_LIST_RATE_PER_SECOND = ARK_GET_RATE_PER_SECOND = ARK_DELETE_RATE_PER_SECOND = 10_000.0
# No quiet window between callbacks for one task, so tests that call back twice in a row
# see two re-reads; the coalescing tests set their own window.
ARKDASH_CALLBACK_COALESCE_SECONDS = 0.0
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing folder  # noqa: F405
