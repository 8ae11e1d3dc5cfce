"""Accounts in the admin (write-only API key), memberships, key rotation and the bootstrap."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.test import Client

from tasks_app.lib.crypto import decrypt_secret
from tasks_app.models import Account, Membership, MembershipRole, TaskStatus

from .dashboard_helpers import make_task

KEY = "ark-ADMINCANARY-0123456789abcdef"
ADD_URL = "/admin/tasks_app/account/add/"
LIST_URL = "/admin/tasks_app/account/"


@pytest.fixture
def admin_client(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    return client


def form(**fields) -> dict:
    """The account form with an empty membership inline."""
    data = {
        "name": "video-team",
        "base_url": "https://ark.cn-beijing.volces.com/api/v3/",
        "api_key": KEY,
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    data.update(fields)
    return data


def test_it_creates_an_account_with_the_key_encrypted_and_never_echoes_it(admin_client):
    page = admin_client.get(ADD_URL)
    assert page.status_code == 200 and b'type="password"' in page.content
    response = admin_client.post(ADD_URL, form(), follow=True)
    assert response.status_code == 200
    account = Account.objects.get(name="video-team")
    assert account.api_key == KEY and KEY not in account.api_key_encrypted
    assert account.base_url == "https://ark.cn-beijing.volces.com/api/v3"  # the trailing slash is dropped
    change = admin_client.get(f"{LIST_URL}{account.pk}/change/").content.decode()
    for text in (response.content.decode(), change):
        assert KEY not in text and account.api_key_encrypted not in text


def test_it_keeps_the_key_when_the_field_is_left_blank_and_replaces_it_when_typed(admin_client):
    admin_client.post(ADD_URL, form())
    account = Account.objects.get(name="video-team")
    url = f"{LIST_URL}{account.pk}/change/"
    assert admin_client.post(url, form(name="renamed", api_key="")).status_code == 302
    account.refresh_from_db()
    assert (account.name, account.api_key) == ("renamed", KEY)
    admin_client.post(url, form(name="renamed", api_key="ark-new-key-2"))
    account.refresh_from_db()
    assert account.api_key == "ark-new-key-2"


@pytest.fixture
def staff_editor(django_user_model) -> Client:
    """Staff with change_account and nothing else: the probe's attacker."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("editor", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["change_account", "view_account"]))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "base_url",
    ["http://attacker.example/api/v3", "https://attacker.example/api/v3", "http://ark.cn-beijing.volces.com/api/v3",
     "https://ark.cn-beijing.volces.com.attacker.example/api/v3", "https://user@attacker.example/api/v3",
     "https://volces.com/api/v3"],
)
def test_it_refuses_a_base_url_the_key_may_not_be_sent_to(admin_client, staff_editor, base_url):
    admin_client.post(ADD_URL, form())
    account = Account.objects.get(name="video-team")

    for client, key in ((staff_editor, ""), (admin_client, "ark-retyped-key")):
        response = client.post(f"{LIST_URL}{account.pk}/change/", form(base_url=base_url, api_key=key))
        assert response.status_code == 200, base_url  # the form again, with the error

    account.refresh_from_db()
    assert account.base_url == "https://ark.cn-beijing.volces.com/api/v3" and account.api_key == KEY


def test_it_accepts_ark_and_byteplus_hosts_and_audits_the_change(admin_client, django_user_model):
    from tasks_app.models import AuditEntry

    admin_client.post(ADD_URL, form())
    account = Account.objects.get(name="video-team")
    url = f"{LIST_URL}{account.pk}/change/"

    for base_url in ("https://ark.ap-southeast-1.volces.com/api/v3", "https://ark.ap-southeast.bytepluses.com/api/v3"):
        assert admin_client.post(url, form(base_url=base_url, api_key="ark-retyped-key")).status_code == 302
        account.refresh_from_db()
        assert account.base_url == base_url

    entries = list(AuditEntry.objects.order_by("pk").values_list("username", "account_name", "action", "message"))
    assert entries == [
        ("root", "video-team", "base_url", "base URL changed from https://ark.cn-beijing.volces.com/api/v3 to "
                                           "https://ark.ap-southeast-1.volces.com/api/v3"),
        ("root", "video-team", "base_url", "base URL changed from https://ark.ap-southeast-1.volces.com/api/v3 to "
                                           "https://ark.ap-southeast.bytepluses.com/api/v3"),
    ]
    assert "ark-retyped-key" not in str(entries)


def test_it_needs_the_key_typed_again_to_change_the_base_url(admin_client, staff_editor):
    admin_client.post(ADD_URL, form())
    account = Account.objects.get(name="video-team")
    url = f"{LIST_URL}{account.pk}/change/"

    response = staff_editor.post(url, form(base_url="https://ark.cn-shanghai.volces.com/api/v3", api_key=""))

    assert response.status_code == 200 and b"Type the API key again" in response.content
    account.refresh_from_db()
    assert account.base_url == "https://ark.cn-beijing.volces.com/api/v3"
    # Renaming needs no key; the same URL with a trailing slash is no change either.
    assert staff_editor.post(url, form(name="renamed", api_key="")).status_code == 302


def test_it_sends_no_key_to_a_base_url_outside_the_allow_list(account, sim):
    from tasks_app.services.sync import sync_account

    Account.objects.filter(pk=account.pk).update(base_url="http://attacker.example/api/v3")  # edited in the DB
    account.refresh_from_db()
    sim.reset_stats()

    report = sync_account(account=account)

    assert not report.ok and "https" in " ".join(report.errors)
    assert sum(sim.stats().values()) == 0


def test_it_requires_a_key_for_a_new_account(admin_client):
    response = admin_client.post(ADD_URL, form(api_key=""))
    assert response.status_code == 200 and b"needs its Ark API key" in response.content
    assert not Account.objects.exists()


def test_it_rejects_a_pasted_key_with_spaces_without_showing_it_back(admin_client):
    response = admin_client.post(ADD_URL, form(api_key="ark-PASTED secret"))
    html = response.content.decode()
    assert response.status_code == 200 and "no spaces or control characters" in html
    assert "PASTED" not in html
    # Another field's error does not send a valid key back either.
    response = admin_client.post(ADD_URL, form(base_url="not a url"))
    assert response.status_code == 200 and KEY not in response.content.decode()


def test_it_lists_name_url_health_counts_and_the_callback_url(admin_client, account, settings):
    settings.ALLOWED_HOSTS = ["arkdash.example.com"]
    make_task(account, status=TaskStatus.QUEUED)
    make_task(account, status=TaskStatus.SUCCEEDED)
    html = admin_client.get(LIST_URL, HTTP_HOST="arkdash.example.com").content.decode()
    assert "team" in html and account.base_url in html and "never synced" in html
    assert f"http://arkdash.example.com/hooks/ark/{account.callback_secret}/" in html
    assert '<td class="field-task_count">2</td>' in html
    assert '<td class="field-active_task_count">1</td>' in html
    change = admin_client.get(f"{LIST_URL}{account.pk}/change/", HTTP_HOST="arkdash.example.com")
    assert f"http://arkdash.example.com/hooks/ark/{account.callback_secret}/" in change.content.decode()
    assert "test-key" not in html and "test-key" not in change.content.decode()


def test_it_adds_members_from_the_account_page(admin_client, account, django_user_model):
    ana = django_user_model.objects.create_user("ana", password="pw")
    data = form(name=account.name, base_url=account.base_url, api_key="")
    data.update({
        "memberships-TOTAL_FORMS": "1",
        "memberships-0-user": str(ana.pk),
        "memberships-0-role": MembershipRole.VIEWER,
    })
    assert admin_client.post(f"{LIST_URL}{account.pk}/change/", data).status_code == 302
    assert Membership.objects.get(user=ana, account=account).role == MembershipRole.VIEWER


def test_it_shows_memberships_on_their_own_page_and_on_the_user_page(admin_client, account, django_user_model):
    ana = django_user_model.objects.create_user("ana", password="pw")
    Membership.objects.create(user=ana, account=account, role=MembershipRole.OPERATOR)
    assert "ana" in admin_client.get("/admin/tasks_app/membership/").content.decode()
    user_page = admin_client.get(f"/admin/auth/user/{ana.pk}/change/").content.decode()
    assert "Ark accounts this person sees" in user_page


def test_it_keeps_staff_without_permissions_out_of_accounts(account, django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user("staff", password="pw", is_staff=True))
    assert client.get(LIST_URL).status_code == 403


# --- rotate_keys -------------------------------------------------------------------------


def test_it_rotates_every_key_to_the_newest_encryption_key(db, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ARKDASH_ENCRYPTION_KEYS = [old]
    accounts = []
    for name in ("a", "b"):
        account = Account(name=name, base_url="https://ark.example/api/v3")
        account.set_api_key(f"key-{name}")
        account.save()
        accounts.append(account)
    settings.ARKDASH_ENCRYPTION_KEYS = [new, old]
    out = StringIO()
    call_command("rotate_keys", stdout=out)
    assert "2 account(s)" in out.getvalue()
    settings.ARKDASH_ENCRYPTION_KEYS = [new]  # the old key can go now
    for account in accounts:
        account.refresh_from_db()
        assert account.api_key == f"key-{account.name}"
        assert decrypt_secret(account.api_key_encrypted) == f"key-{account.name}"


def test_it_names_the_accounts_it_cannot_decrypt(db, settings):
    settings.ARKDASH_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    lost = Account(name="lost", base_url="https://ark.example/api/v3")
    lost.set_api_key("key-lost")
    lost.save()
    settings.ARKDASH_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    kept = Account(name="kept", base_url="https://ark.example/api/v3")
    kept.set_api_key("key-kept")
    kept.save()
    with pytest.raises(CommandError, match="lost"):
        call_command("rotate_keys", stdout=StringIO())
    kept.refresh_from_db()
    assert kept.api_key == "key-kept"


# --- bootstrap ----------------------------------------------------------------------------


def test_it_makes_the_bootstrap_admin_an_operator_of_the_default_account(db, settings, django_user_model):
    settings.ARK_API_KEY = "env-key-1"
    call_command("bootstrap", stdout=StringIO())
    call_command("bootstrap", stdout=StringIO())  # idempotent
    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser
    [membership] = Membership.objects.filter(user=admin)
    assert (membership.account.is_default, membership.role) == (True, MembershipRole.OPERATOR)


ADMIN_LISTS = ["/admin/tasks_app/account/", "/admin/tasks_app/membership/", "/admin/tasks_app/auditentry/",
               "/admin/auth/user/", "/admin/axes/accessattempt/"]  # fmt: skip


@pytest.mark.parametrize("lookup", ["created__year=0", "created__year=10000", "created__year=-1",
                                    "created__iso_year=0", "date_joined__year=99999999999999999999"])  # fmt: skip
def test_it_refuses_an_out_of_range_date_lookup_in_any_admin_list(admin_client, lookup):
    # Found by the admin fuzz: Python's datetime cannot hold year 0, and the query raised
    # ValueError when compiled. Django's answer to a bad lookup is a redirect to ?e=1.
    for path in ADMIN_LISTS:
        response = admin_client.get(f"{path}?{lookup}")
        assert response.status_code == 302, path
        assert response["Location"].endswith("?e=1"), path
