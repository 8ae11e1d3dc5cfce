"""X-Forwarded-* believed from ARKDASH_TRUSTED_PROXIES only (arkdash/middleware.py)."""

from __future__ import annotations

import ipaddress

import pytest
from django.test import Client

from .dashboard_helpers import ANA_PASSWORD as PASSWORD

LOGIN = "/accounts/login/"
PROXY = "10.0.0.2"


@pytest.fixture
def behind_proxy(settings):
    settings.ARKDASH_TRUSTED_PROXY_NETWORKS = [ipaddress.ip_network(PROXY)]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # what settings.py sets then
    return settings


def login(password: str, *, ip: str, forwarded_for: str | None = None) -> int:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}
    return Client().post(LOGIN, {"username": "ana", "password": password}, REMOTE_ADDR=ip, **extra).status_code


def test_it_locks_out_a_direct_client_whatever_x_forwarded_for_says(ana, behind_proxy):
    statuses = [login("wrong", ip="198.51.100.7", forwarded_for=f"192.0.2.{n}") for n in range(5)]

    assert statuses == [200, 200, 200, 200, 429]
    assert login(PASSWORD, ip="198.51.100.7", forwarded_for="192.0.2.99") == 429


def test_it_counts_failures_per_client_behind_the_trusted_proxy(ana, behind_proxy):
    # The proxy appends the address it saw; what the client wrote before it is not believed.
    statuses = [login("wrong", ip=PROXY, forwarded_for=f"192.0.2.{n}, 203.0.113.9") for n in range(5)]

    assert statuses[-1] == 429
    assert login(PASSWORD, ip=PROXY, forwarded_for="203.0.113.10") == 302  # another client: not locked


def test_it_does_not_let_a_direct_client_claim_https(behind_proxy, settings):
    settings.SECURE_SSL_REDIRECT = True

    direct = Client().get(LOGIN, REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_PROTO="https")
    proxied = Client().get(LOGIN, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_PROTO="https")

    assert direct.status_code == 301 and direct["Location"].startswith("https://")
    assert proxied.status_code == 200


def test_it_names_accounts_on_healthz_only_to_loopback_that_came_without_a_proxy(
    client, settings, local_archive, account
):
    settings.ARKDASH_TRUSTED_PROXY_NETWORKS = [ipaddress.ip_network("127.0.0.1")]  # a proxy on this host

    through_proxy = client.get("/healthz", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    proxy_without_header = client.get("/healthz", REMOTE_ADDR="127.0.0.1")
    probe_on_host = client.get("/healthz", REMOTE_ADDR="::1")

    for response in (through_proxy, proxy_without_header):
        assert account.name.encode() not in response.content
        assert response.json()["accounts"] == {"total": 1, "failing": 1, "mirroring_the_same_tasks": 0}
    assert [entry["name"] for entry in probe_on_host.json()["accounts"]] == [account.name]


def test_it_serves_metrics_to_loopback_only_when_no_proxy_is_in_between(db, client, settings):
    settings.ARKDASH_METRICS_TOKEN = ""
    settings.ARKDASH_TRUSTED_PROXY_NETWORKS = [ipaddress.ip_network("127.0.0.1")]

    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200


@pytest.mark.parametrize(
    "forwarded_for, expected",
    [
        ("203.0.113.9", "203.0.113.9"),
        ("6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the client wrote the first one
        ("203.0.113.9, 10.0.0.3", "203.0.113.9"),  # two proxies of ours in a row
        ("", PROXY),
        ("not-an-address", PROXY),
        ("203.0.113.9, garbage", PROXY),
    ],
)
def test_it_takes_the_client_from_the_right_end_of_x_forwarded_for(forwarded_for, expected):
    from arkdash.security import client_address, parse_trusted_proxies

    proxies = parse_trusted_proxies([PROXY, "10.0.0.3"])

    assert client_address(PROXY, forwarded_for, proxies) == expected
