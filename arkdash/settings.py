"""ArkDash settings. Everything comes from the environment (see README "Configuration").

Embedded defaults make a fresh laptop work with Python alone: SQLite, local-disk
archive, a filesystem Celery broker (arkdash/broker.py). Production sets DATABASE_URL, REDIS_URL and the
S3 variables.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE, WASM_UNSAFE_EVAL
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from .env import envbool, envfloat, envint, envlist, envstr
from .security import file_mode, output_media_sources, parse_trusted_proxies, s3_media_sources, simulator_host

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(envstr("ARKDASH_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _persistent_secret_key() -> str:
    """A dev secret kept in the data folder so sessions survive restarts."""
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = envstr("DJANGO_SECRET_KEY") or _persistent_secret_key()
DEBUG = envbool("ARKDASH_DEBUG", False)
ALLOWED_HOSTS = envlist("ARKDASH_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("ARKDASH_CSRF_TRUSTED_ORIGINS", [])

# Fernet keys for Ark API keys at rest: the first encrypts, all decrypt (rotation).
ARKDASH_ENCRYPTION_KEYS = envlist("ARKDASH_ENCRYPTION_KEYS", [])

# --- Ark -------------------------------------------------------------------------
ARK_API_KEY = envstr("ARK_API_KEY")
ARK_BASE_URL = envstr("ARK_BASE_URL", "https://ark.cn-beijing.volces.com/api/v3")
# Hosts an account's base URL may name (always over https): Ark's regions and BytePlus
# ModelArk, the international edition. The API key is sent there, so nowhere else.
ARKDASH_ARK_ALLOWED_HOSTS = envlist("ARKDASH_ARK_ALLOWED_HOSTS", ["ark.*.volces.com", "ark.*.bytepluses.com"])
# The Ark simulator's address when one runs (`make run` without ARK_API_KEY, the tests):
# its base URL may be plain http and its outputs may live on loopback. Unset in production.
ARKDASH_SIMULATOR_URL = envstr("ARKDASH_SIMULATOR_URL").rstrip("/")
ARK_TIMEOUT_SECONDS = envfloat("ARK_TIMEOUT_SECONDS", 30.0)
ARK_MAX_RETRIES = envint("ARK_MAX_RETRIES", 3)
# First retry waits up to this long (full jitter, doubling); a 429's Retry-After is a floor.
ARK_RETRY_BACKOFF_SECONDS = envfloat("ARK_RETRY_BACKOFF_SECONDS", 0.5)
# The list endpoint allows about 1 request/s per account; gets and deletes about 20/s.
ARK_LIST_RATE_PER_SECOND = envfloat("ARK_LIST_RATE_PER_SECOND", 1.0)
ARK_GET_RATE_PER_SECOND = envfloat("ARK_GET_RATE_PER_SECOND", 20.0)
ARK_DELETE_RATE_PER_SECOND = envfloat("ARK_DELETE_RATE_PER_SECOND", 20.0)
# Requests an account may make back to back before the steady rate applies (1 = evenly spaced).
ARK_RATE_BURST = envint("ARK_RATE_BURST", 1)
# Names the shared budgets in Redis: ArkDash installs sharing one Redis need distinct ones.
ARK_RATE_LIMIT_KEY_PREFIX = envstr("ARK_RATE_LIMIT_KEY_PREFIX", "arkdash:ratelimit")

# --- Sync (tasks_app/services/sync.py) ----------------------------------------------
# Every cycle refreshes active tasks and looks for new ones; a full sweep of Ark's
# 7-day window runs every ARKDASH_FULL_SWEEP_SECONDS.
ARKDASH_SYNC_INTERVAL_SECONDS = envfloat("ARKDASH_SYNC_INTERVAL_SECONDS", 5.0)
ARKDASH_FULL_SWEEP_SECONDS = envint("ARKDASH_FULL_SWEEP_SECONDS", 300)
# A worker that dies mid-cycle blocks its account's sync for at most this long (a live
# cycle renews it before every call). A very slow call may outlive it and let a second
# cycle start: harmless, since the shared rate limiter, not the lease, keeps the budget.
ARKDASH_SYNC_LEASE_SECONDS = envint("ARKDASH_SYNC_LEASE_SECONDS", 60)
# 429s slow a cycle down; only after this long rate-limited does the cycle count as failed.
ARKDASH_SYNC_RATE_LIMIT_PATIENCE_SECONDS = envfloat("ARKDASH_SYNC_RATE_LIMIT_PATIENCE_SECONDS", 120.0)
# Ark gives a callback 5 s to be acknowledged: the inline re-read must finish sooner.
ARKDASH_CALLBACK_TIMEOUT_SECONDS = envfloat("ARKDASH_CALLBACK_TIMEOUT_SECONDS", 3.0)
# Callbacks for one task share re-reads: one in flight, then this quiet window, after
# which one more re-read covers every callback that arrived meanwhile.
ARKDASH_CALLBACK_COALESCE_SECONDS = envfloat("ARKDASH_CALLBACK_COALESCE_SECONDS", 2.0)

# The Ark-compatible gateway (/api/v3): how long its links to archived outputs stay valid,
# and where it may relay callers' callbacks (any public host by default, as for downloads'
# wildcard entries: private addresses are refused unless allowed).
ARKDASH_GATEWAY_OUTPUT_URL_SECONDS = envint("ARKDASH_GATEWAY_OUTPUT_URL_SECONDS", 7 * 24 * 3600)
ARKDASH_GATEWAY_CALLBACK_ALLOWED_HOSTS = envlist("ARKDASH_GATEWAY_CALLBACK_ALLOWED_HOSTS", ["*"])
ARKDASH_GATEWAY_CALLBACK_PRIVATE_HOSTS = envlist("ARKDASH_GATEWAY_CALLBACK_PRIVATE_HOSTS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_filters",
    "csp",
    "axes",
    "tasks_app",
    "tasks_app.observability",
]

MIDDLEWARE = [
    # Outermost, so it also counts the 500s Django makes of exceptions (/metrics).
    "tasks_app.observability.middleware.ResponseCountingMiddleware",
    # Before anything reads the client's address or asks whether the request is https.
    "arkdash.middleware.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Signed-in pages: Cache-Control: private, no-store (downloads keep their own rule).
    "arkdash.middleware.PrivateCacheMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Times in the viewer's zone (cookie set by the browser's Intl API).
    "tasks_app.timezones.TimezoneMiddleware",
    # A GET whose database connection died mid-request is answered once more.
    "arkdash.middleware.RetryReadOnLostDatabaseMiddleware",
    # Last, as django-axes asks: answers a locked-out login with the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "arkdash.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.tz",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "arkdash.wsgi.application"

# Per process, in memory: a few figures that are slow to compute and may be a little old
# (the model suggestions, the archive lag), and the list's rows and the gallery's cards under
# their version (templates/tasks_app/task_list.html, gallery.html). Room for a few hundred
# pages of rows and cards.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "OPTIONS": {"MAX_ENTRIES": 20_000}}
}

DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{DATA_DIR / 'arkdash.sqlite3'}",
        conn_max_age=envint("ARKDASH_DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Web, worker and beat share one SQLite file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Tell the planner reads are random-access cheap (SSD). With PostgreSQL's default
    # of 4 the status counts scan the whole table instead of the covering index
    # (docs/benchmarks.md, Dashboard). 0 leaves the server's own setting.
    _random_page_cost = envfloat("ARKDASH_PG_RANDOM_PAGE_COST", 1.1)
    if _random_page_cost:
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = f"-c random_page_cost={_random_page_cost}"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out login before the password is even checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "tasks_app:task_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = envstr("ARKDASH_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(envstr("ARKDASH_STATIC_ROOT", str(DATA_DIR / "staticfiles")))

# --- Files under the data folder -----------------------------------------------------
# Archived outputs and the SQLite database are the app user's alone (0600), or also its
# group's (0640, for a backup user, say); their folders follow (0700 / 0750). Django's
# FileSystemStorage applies these to every file it writes.
ARKDASH_FILE_MODE = file_mode(envstr("ARKDASH_FILE_MODE", "0600"))
FILE_UPLOAD_PERMISSIONS = ARKDASH_FILE_MODE
FILE_UPLOAD_DIRECTORY_PERMISSIONS = ARKDASH_FILE_MODE | ((ARKDASH_FILE_MODE & 0o444) >> 2)

# --- Archive storage --------------------------------------------------------------
ARKDASH_S3_BUCKET = envstr("ARKDASH_S3_BUCKET")
if ARKDASH_S3_BUCKET:
    from .s3 import client_config as _s3_client_config

    _archive_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": ARKDASH_S3_BUCKET,
            "endpoint_url": envstr("ARKDASH_S3_ENDPOINT_URL") or None,
            "region_name": envstr("ARKDASH_S3_REGION") or None,
            "file_overwrite": True,
            "default_acl": None,
            "querystring_expire": envint("ARKDASH_S3_URL_EXPIRE_SECONDS", 300),
            # The client's settings (addressing, timeouts, checksums): arkdash/s3.py. With a
            # client_config, django-storages ignores its own addressing_style option.
            "client_config": _s3_client_config(
                addressing_style=envstr("ARKDASH_S3_ADDRESSING_STYLE", "path")
            ),
        },
    }
else:
    _archive_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "archive")},
    }

# --- Archive (copying outputs before their URLs die) ------------------------------
# Hosts output URLs may be fetched from: Ark's and BytePlus ModelArk's object storage and
# CDN ("*.volces.com", or "*" for any host). Whatever the entry, every address a host
# resolves to must be public (tasks_app/lib/downloads.py), on every redirect hop.
ARKDASH_ARCHIVE_ALLOWED_HOSTS = envlist(
    "ARKDASH_ARCHIVE_ALLOWED_HOSTS",
    ["*.volces.com", "*.volccdn.com", "*.bytepluses.com", "*.byteplus.com"],
)
# The explicit opt-in for outputs on loopback or a private network: `host:port` entries
# (a bare host means any port). The simulator's host is added when it runs.
ARKDASH_ARCHIVE_PRIVATE_HOSTS = envlist("ARKDASH_ARCHIVE_PRIVATE_HOSTS", [])
if ARKDASH_SIMULATOR_URL:
    ARKDASH_ARCHIVE_PRIVATE_HOSTS = [*ARKDASH_ARCHIVE_PRIVATE_HOSTS, simulator_host(ARKDASH_SIMULATOR_URL)]
ARKDASH_ARCHIVE_CONNECT_TIMEOUT_SECONDS = envfloat("ARKDASH_ARCHIVE_CONNECT_TIMEOUT_SECONDS", 10.0)
ARKDASH_ARCHIVE_READ_TIMEOUT_SECONDS = envfloat("ARKDASH_ARCHIVE_READ_TIMEOUT_SECONDS", 60.0)
# A copy whose worker stopped reporting progress this long ago may be taken over.
ARKDASH_ARCHIVE_CLAIM_TIMEOUT_SECONDS = envint("ARKDASH_ARCHIVE_CLAIM_TIMEOUT_SECONDS", 300)
# The sweeper re-queues an artifact still not taken this long after it was queued.
ARKDASH_ARCHIVE_REQUEUE_AFTER_SECONDS = envint("ARKDASH_ARCHIVE_REQUEUE_AFTER_SECONDS", 300)
ARKDASH_ARCHIVE_MAX_BACKOFF_SECONDS = envint("ARKDASH_ARCHIVE_MAX_BACKOFF_SECONDS", 900)
# 3D zips are spooled to local disk to be verified before upload: cap their size.
ARKDASH_ARCHIVE_ZIP_MAX_BYTES = envint("ARKDASH_ARCHIVE_ZIP_MAX_BYTES", 2 * 1024**3)
ARKDASH_ARCHIVE_ZIP_MAX_RATIO = envint("ARKDASH_ARCHIVE_ZIP_MAX_RATIO", 200)
# S3 multipart: at most CONCURRENCY parts of PART_MB are in memory per copy (one being
# gathered while the others upload), so a worker's memory is flat whatever the file size.
ARKDASH_ARCHIVE_S3_PART_MB = envint("ARKDASH_ARCHIVE_S3_PART_MB", 5)
ARKDASH_ARCHIVE_S3_CONCURRENCY = envint("ARKDASH_ARCHIVE_S3_CONCURRENCY", 2)

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    "archive": _archive_storage,
}

# --- Security (README "Security") ------------------------------------------------------
# ARKDASH_SECURE=true (docker-compose) means HTTPS in front: secure cookies, HSTS, redirect
# to https. Off by default so the laptop's plain http://127.0.0.1 keeps working.
ARKDASH_SECURE = envbool("ARKDASH_SECURE", False)
# The reverse proxies in front (addresses or networks): only a request arriving from one of
# them may say who the client is (X-Forwarded-For) and that it came over https
# (X-Forwarded-Proto). From anyone else those headers are dropped (arkdash/middleware.py).
ARKDASH_TRUSTED_PROXIES = envlist("ARKDASH_TRUSTED_PROXIES", [])
ARKDASH_TRUSTED_PROXY_NETWORKS = parse_trusted_proxies(ARKDASH_TRUSTED_PROXIES)
if envbool("ARKDASH_BEHIND_PROXY", False) and not ARKDASH_TRUSTED_PROXY_NETWORKS:
    # The old switch trusted the headers from any client that reached the app directly.
    raise ImproperlyConfigured(
        "ARKDASH_BEHIND_PROXY is replaced by ARKDASH_TRUSTED_PROXIES: list the proxy's addresses "
        "(see README, Security)"
    )
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = ARKDASH_SECURE
SECURE_SSL_REDIRECT = envbool("ARKDASH_SSL_REDIRECT", ARKDASH_SECURE)
# Probes and Prometheus call these over plain http from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = 31_536_000 if ARKDASH_SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = ARKDASH_SECURE
if ARKDASH_TRUSTED_PROXY_NETWORKS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True

# Content-Security-Policy (django-csp): scripts, styles and fonts only from our own static
# files; no inline code and no eval anywhere (templates hold neither). Media and images may
# also come from Ark's output hosts (played until archived) and the S3 archive (presigned
# redirects); the vendored 3D viewer decodes models through blob: workers and URLs.
_MEDIA_SOURCES = [
    SELF,
    *output_media_sources([*ARKDASH_ARCHIVE_ALLOWED_HOSTS, *ARKDASH_ARCHIVE_PRIVATE_HOSTS]),
    *s3_media_sources(
        bucket=ARKDASH_S3_BUCKET,
        endpoint_url=envstr("ARKDASH_S3_ENDPOINT_URL"),
        region=envstr("ARKDASH_S3_REGION"),
    ),
    *envlist("ARKDASH_CSP_MEDIA_SOURCES", []),
]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "font-src": [SELF],
        "connect-src": [*_MEDIA_SOURCES, "blob:", "data:"],
        "img-src": [*_MEDIA_SOURCES, "blob:", "data:"],
        "media-src": [*_MEDIA_SOURCES, "blob:"],
        "worker-src": [SELF, "blob:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# Added on the one page that shows a 3D model: the vendored model-viewer styles its shadow
# DOM inline and compiles WebAssembly decoders. Still no inline script and no JS eval.
ARKDASH_CSP_3D_VIEWER = {"script-src": [WASM_UNSAFE_EVAL], "style-src": [UNSAFE_INLINE]}

# Login throttle (django-axes): after ARKDASH_LOGIN_FAILURE_LIMIT failures for one username
# from one address, that pair is refused for ARKDASH_LOGIN_LOCKOUT_MINUTES.
AXES_FAILURE_LIMIT = envint("ARKDASH_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("ARKDASH_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "tasks_app.views_auth.login_locked_out"
AXES_VERBOSE = False  # its own start-up banner; failures and lockouts are still logged
# REMOTE_ADDR, already the client's behind a trusted proxy (never django-ipware's guess).
AXES_CLIENT_IP_CALLABLE = "arkdash.security.client_ip"

# --- Celery -----------------------------------------------------------------------
REDIS_URL = envstr("REDIS_URL")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 3600}
else:
    # A broker that needs no server (fresh laptop): kombu's filesystem transport with
    # atomic writes and a reader that survives a bad file (arkdash/broker.py says why).
    _broker_dir = DATA_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://localhost/"  # the host only silences kombu's "no hostname" warning
    CELERY_BROKER_TRANSPORT = "arkdash.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast/pidbox files; kombu would otherwise write them into the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# A killed worker's task is redelivered, not lost (archive copies are idempotent).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = envbool("ARKDASH_CELERY_EAGER", False)
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {}
# Sync: each run fans out one sync_account per account; `expires` drops runs that a
# stopped worker could not take in time instead of replaying a backlog.
CELERY_BEAT_SCHEDULE["sync-all-accounts"] = {
    "task": "tasks_app.tasks.sync_all_accounts",
    "schedule": ARKDASH_SYNC_INTERVAL_SECONDS,
    "options": {"expires": max(ARKDASH_SYNC_INTERVAL_SECONDS, 5.0)},
}
# How often beat runs the two safety nets below (the chaos run shortens them).
ARKDASH_HANDOFF_SWEEP_SECONDS = envfloat("ARKDASH_HANDOFF_SWEEP_SECONDS", 60.0)
ARKDASH_ARCHIVE_SWEEP_SECONDS = envfloat("ARKDASH_ARCHIVE_SWEEP_SECONDS", 60.0)
# Tasks that turned succeeded but whose archive hand-off did not happen (a crash).
CELERY_BEAT_SCHEDULE["archive-handoff-sweep"] = {
    "task": "tasks_app.tasks.archive_handoff_sweep",
    "schedule": ARKDASH_HANDOFF_SWEEP_SECONDS,
    "options": {"expires": ARKDASH_HANDOFF_SWEEP_SECONDS},
}

# Re-queues every output not archived yet, earliest deadline first (lost messages,
# dead workers); an attempt after the URL died marks the output lost.
CELERY_BEAT_SCHEDULE["archive-sweep"] = {
    "task": "tasks_app.tasks.archive_sweep",
    "schedule": ARKDASH_ARCHIVE_SWEEP_SECONDS,
    "options": {"expires": ARKDASH_ARCHIVE_SWEEP_SECONDS},
}

# Deletes archived outputs older than each account's retention rule (off unless an
# account sets one) and writes the day's storage-used snapshot for the archive page.
CELERY_BEAT_SCHEDULE["archive-retention"] = {
    "task": "tasks_app.tasks.archive_retention",
    "schedule": 3600.0,
    "options": {"expires": 3600.0},
}

# Gallery pictures whose jobs were lost (a killed worker, a broker restart) are queued again
# once they are this late (the chaos run shortens both).
ARKDASH_PICTURE_SWEEP_SECONDS = envfloat("ARKDASH_PICTURE_SWEEP_SECONDS", 600.0)
ARKDASH_PICTURE_SWEEP_GRACE_SECONDS = envfloat("ARKDASH_PICTURE_SWEEP_GRACE_SECONDS", 600.0)
CELERY_BEAT_SCHEDULE["picture-sweep"] = {
    "task": "tasks_app.tasks.picture_sweep",
    "schedule": ARKDASH_PICTURE_SWEEP_SECONDS,
    "options": {"expires": ARKDASH_PICTURE_SWEEP_SECONDS},
}

# Recomputes the insights page's hourly rollup for the hours changed since the last run
# (services/insights_rollup.py); the page's whole hours are at most about this old.
CELERY_BEAT_SCHEDULE["insights-rollup-refresh"] = {
    "task": "tasks_app.tasks.insights_rollup_refresh",
    "schedule": 60.0,
    "options": {"expires": 60.0},
}

# --- E-mail (alert channels of kind e-mail) -------------------------------------------------
# Django's own settings, read from variables of the same names.
EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "arkdash@localhost")

# --- Alerts (tasks_app/alerts, docs/alerts.md) ----------------------------------------------
# Beat looks for new events this often; a channel's events wait ARKDASH_ALERT_BATCH_SECONDS
# (from the first) so that a burst goes out as one digest.
ARKDASH_ALERT_SCAN_SECONDS = envfloat("ARKDASH_ALERT_SCAN_SECONDS", 30.0)
ARKDASH_ALERT_BATCH_SECONDS = envfloat("ARKDASH_ALERT_BATCH_SECONDS", 30.0)
# Hosts alert webhooks may be sent to ("*": any public host) and the explicit opt-in for
# loopback or private ones (`host:port` entries), as ARKDASH_GATEWAY_CALLBACK_PRIVATE_HOSTS.
ARKDASH_ALERT_ALLOWED_HOSTS = envlist("ARKDASH_ALERT_ALLOWED_HOSTS", ["*"])
ARKDASH_ALERT_PRIVATE_HOSTS = envlist("ARKDASH_ALERT_PRIVATE_HOSTS", [])
ARKDASH_ALERT_TIMEOUT_SECONDS = envfloat("ARKDASH_ALERT_TIMEOUT_SECONDS", 10.0)
# 5xx, 429 and timeouts are retried, waiting BACKOFF, then twice as long each time (capped).
ARKDASH_ALERT_MAX_ATTEMPTS = envint("ARKDASH_ALERT_MAX_ATTEMPTS", 8)
ARKDASH_ALERT_BACKOFF_SECONDS = envfloat("ARKDASH_ALERT_BACKOFF_SECONDS", 10.0)
ARKDASH_ALERT_MAX_BACKOFF_SECONDS = envfloat("ARKDASH_ALERT_MAX_BACKOFF_SECONDS", 1800.0)
# A send whose worker died is taken over after this long (and re-queued by the scan).
ARKDASH_ALERT_CLAIM_TIMEOUT_SECONDS = envint("ARKDASH_ALERT_CLAIM_TIMEOUT_SECONDS", 300)
CELERY_BEAT_SCHEDULE["alerts-scan"] = {
    "task": "tasks_app.tasks.alerts_scan",
    "schedule": ARKDASH_ALERT_SCAN_SECONDS,
    "options": {"expires": ARKDASH_ALERT_SCAN_SECONDS},
}

# --- Logs and metrics (tasks_app/observability) ----------------------------------------
# plain on a laptop; json (one object per line, for log shippers) in docker-compose.
ARKDASH_LOG_FORMAT = envstr("ARKDASH_LOG_FORMAT", "plain").strip().lower()
if ARKDASH_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"ARKDASH_LOG_FORMAT must be plain or json, not {ARKDASH_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Stamps task id / account (tasks_app.observability.logging.log_context) on every record.
    "filters": {"context": {"()": "tasks_app.observability.logging.ContextFilter"}},
    "formatters": {
        "plain": {"()": "tasks_app.observability.logging.PlainFormatter"},
        "json": {"()": "tasks_app.observability.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": ARKDASH_LOG_FORMAT, "filters": ["context"]}
    },
    "root": {"handlers": ["console"], "level": envstr("ARKDASH_LOG_LEVEL", "INFO")},
    # axes: every successful login is four INFO lines; failures and lockouts are WARNINGs.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
# /metrics: loopback only when unset; with a token, any client sending `Authorization: Bearer <token>`.
ARKDASH_METRICS_TOKEN = envstr("ARKDASH_METRICS_TOKEN")
# Where the cross-process counters live: this Redis hash when REDIS_URL is set, else a SQLite file.
ARKDASH_METRICS_REDIS_KEY = envstr("ARKDASH_METRICS_REDIS_KEY", "arkdash:metrics")
ARKDASH_METRICS_SQLITE_PATH = envstr("ARKDASH_METRICS_SQLITE_PATH", str(DATA_DIR / "metrics.sqlite3"))
