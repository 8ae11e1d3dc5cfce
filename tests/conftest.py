from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from .services import IN_CI, postgres_available, redis_available


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("postgres") and not postgres_available():
            _missing(item, "PostgreSQL at 127.0.0.1:5432")
        if item.get_closest_marker("redis") and not redis_available():
            _missing(item, "Redis at 127.0.0.1:6379")


def _missing(item: pytest.Item, what: str) -> None:
    if IN_CI:
        # Never skip in CI: a missing service must turn the build red.
        item.add_marker(pytest.mark.usefixtures("_fail_missing_service"))
        item.user_properties.append(("missing_service", what))
    else:
        item.add_marker(pytest.mark.skip(reason=f"{what} is not running (would fail under CI=true)"))


@pytest.fixture
def _fail_missing_service(request: pytest.FixtureRequest) -> None:
    missing = dict(request.node.user_properties).get("missing_service")
    pytest.fail(f"{missing} is required under CI=true but is not reachable")


SIM_API_KEY = "test-key"
SIM_BASE_URL = "http://arksim.test"


@contextmanager
def routed_simulator(*, api_keys: tuple[str, ...] = (SIM_API_KEY,), **options: Any) -> Iterator[Any]:
    """An in-process simulator (with `options`) that every outbound call of the app goes to."""
    from arksim import Simulator
    from tasks_app.lib import transport

    # Rate limits off: the sim's clock stands still unless a test advances it.
    simulator = Simulator(
        api_keys=api_keys,
        public_base_url=SIM_BASE_URL,
        list_rate_per_second=None,
        get_rate_per_second=None,
        delete_rate_per_second=None,
        **options,
    )
    with transport.routed_to(simulator.transport()):
        yield simulator


@pytest.fixture
def sim():
    """The Ark simulator, in-process; every outbound call of the app is routed to it."""
    with routed_simulator() as simulator:
        yield simulator


def simulator_account(name: str):
    """A saved Account whose key and base URL point at the `sim` fixture."""
    from tasks_app.models import Account

    account = Account(name=name, base_url=f"{SIM_BASE_URL}/api/v3")
    account.set_api_key(SIM_API_KEY)
    account.save()
    return account


@pytest.fixture
def account(db):
    """An Account whose key and base URL point at the `sim` fixture."""
    return simulator_account("team")


@pytest.fixture
def rival(db):
    """A second account on the same simulator: its tasks must stay invisible to outsiders."""
    return simulator_account("rival")


@pytest.fixture
def user_client(client, django_user_model, account):
    """A signed-in operator of `account` (a file may define its own, e.g. a viewer)."""
    from .dashboard_helpers import member_of

    user = django_user_model.objects.create_user("ana", password="pw")
    member_of(user, account)
    client.force_login(user)
    return client


@pytest.fixture
def operator(django_user_model, account):
    """A person who may operate `account`'s tasks (cancel, delete, gateway tokens)."""
    from tasks_app.models import Membership, MembershipRole

    user = django_user_model.objects.create_user("op", password="pw")
    Membership.objects.create(user=user, account=account, role=MembershipRole.OPERATOR)
    return user


@pytest.fixture
def viewer(django_user_model, account):
    """A member of `account` who may see its tasks but not act on them."""
    from tasks_app.models import Membership, MembershipRole

    user = django_user_model.objects.create_user("viewer", password="pw")
    Membership.objects.create(user=user, account=account, role=MembershipRole.VIEWER)
    return user


@pytest.fixture
def ana(django_user_model):
    """A person with a known password, for the login tests."""
    from .dashboard_helpers import ANA_PASSWORD

    return django_user_model.objects.create_user("ana", password=ANA_PASSWORD)


@pytest.fixture
def unthrottled(settings):
    """The simulator enforces no rate in these tests; neither should the real-time limiter."""
    settings.ARK_LIST_RATE_PER_SECOND = 10_000.0
    settings.ARK_GET_RATE_PER_SECOND = 10_000.0
    settings.ARK_RETRY_BACKOFF_SECONDS = 0.001


@pytest.fixture
def in_process_django():
    """An httpx transport into this Django app, inside the test's transaction.

    Like django.test.Client, it stops the per-request connection clean-up, which would
    close the connection holding the test's transaction.
    """
    import httpx
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield httpx.WSGITransport(app=WSGIHandler())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-compatible server (moto's server mode) on loopback for this test run."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:  # a free port; moto's own port=0 does not report back
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


class ArchiveBackend:
    """The archive storage a test runs against, and what is visible in it."""

    def __init__(self, kind: str, *, root=None, endpoint: str = "", bucket: str = "") -> None:
        self.kind, self.root, self.endpoint, self.bucket = kind, root, endpoint, bucket

    def s3_client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def visible_keys(self) -> list[str]:
        """Every object a reader could see (local: every file, partials included)."""
        if self.kind == "local":
            return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())
        listing = self.s3_client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def read(self, key: str) -> bytes:
        if self.kind == "local":
            return (self.root / key).read_bytes()
        return self.s3_client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def uploads_in_progress(self) -> list[str]:
        if self.kind == "local":
            return []
        listing = self.s3_client().list_multipart_uploads(Bucket=self.bucket)
        return [upload["Key"] for upload in listing.get("Uploads", [])]


def archive_storage_settings(backend: ArchiveBackend) -> dict:
    from arkdash.s3 import client_config

    if backend.kind == "local":
        return {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(backend.root)}}
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": backend.bucket,
            "endpoint_url": backend.endpoint,
            "region_name": "us-east-1",
            "access_key": "testing",
            "secret_key": "testing",
            "file_overwrite": True,
            "default_acl": None,
            "querystring_expire": 300,
            "client_config": client_config(addressing_style="path"),  # production's
        },
    }


def _use_archive_backend(request, settings, tmp_path, kind: str) -> ArchiveBackend:
    if kind == "local":
        backend = ArchiveBackend("local", root=tmp_path / "archive")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        backend = ArchiveBackend("s3", endpoint=endpoint, bucket=f"archive-{uuid.uuid4().hex[:12]}")
        backend.s3_client().create_bucket(Bucket=backend.bucket)
    # Assigning settings.STORAGES fires setting_changed, which resets Django's storages cache.
    settings.STORAGES = {**settings.STORAGES, "archive": archive_storage_settings(backend)}
    return backend


@pytest.fixture(params=["local", "s3"])
def archive_backend(request, settings, tmp_path):
    """STORAGES["archive"] on local disk, then on the moto S3 server (an empty bucket each)."""
    return _use_archive_backend(request, settings, tmp_path, request.param)


@pytest.fixture
def local_archive(request, settings, tmp_path):
    return _use_archive_backend(request, settings, tmp_path, "local")


@pytest.fixture
def s3_archive(request, settings, tmp_path):
    return _use_archive_backend(request, settings, tmp_path, "s3")


@pytest.fixture
def mirror(sim, account):
    """mirror(sim_task_id) -> the Task row for a simulator task, as the sync would write it."""
    from datetime import UTC, datetime

    from tasks_app.models import Task

    def make(sim_task_id: str, **overrides):
        body = sim.task_json(sim_task_id)
        content = body.get("content") or {}
        updated = datetime.fromtimestamp(int(body["updated_at"]), tz=UTC)
        values = {
            "account": account,
            "ark_id": body["id"],
            "kind": "3d" if "file_url" in content or body.get("fileformat") else "video",
            "model": body.get("model", ""),
            "status": body["status"],
            "ark_created_at": datetime.fromtimestamp(int(body["created_at"]), tz=UTC),
            "ark_updated_at": updated,
            "finished_at": updated if body["status"] in ("succeeded", "failed", "expired") else None,
            "file_format": body.get("fileformat", "") or "",
            "video_url": content.get("video_url", ""),
            "last_frame_url": content.get("last_frame_url", ""),
            "file_url": content.get("file_url", ""),
            "raw": body,
        }
        values.update(overrides)
        return Task.objects.create(**values)

    return make


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Cached reads (status counts, model suggestions) must not leak between tests: on
    SQLite a rolled-back test's ids come back in the next one and would hit its entries."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _default_language():
    """A request in Chinese leaves Chinese active in the test's thread (LocaleMiddleware
    activates a language and nothing deactivates it): the next test starts in the default."""
    from django.utils import translation

    yield
    translation.deactivate()
