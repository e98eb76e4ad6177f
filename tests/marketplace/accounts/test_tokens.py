from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from marketplace.accounts.models import Account, ApiToken
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_every_user_gets_a_personal_account_namespace() -> None:
    user = UserFactory(username="bob")
    assert Account.objects.get(user=user).username == "bob"
    assert user.account.type == Account.Type.USER


def test_token_is_prefixed_and_only_its_hash_is_stored() -> None:
    token, raw = ApiToken.create_for(UserFactory())
    assert raw.startswith("mkt_") and len(raw) > 40
    assert token.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {token.key_hash, token.key_hint}
    assert ApiToken.objects.filter(key_hash=raw).count() == 0


def test_authenticate_finds_the_token_and_records_use() -> None:
    token, raw = ApiToken.create_for(UserFactory())
    found = ApiToken.objects.authenticate(raw)
    assert found == token
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_authenticate_rejects_unknown_and_inactive() -> None:
    user = UserFactory()
    _, raw = ApiToken.create_for(user)
    assert ApiToken.objects.authenticate(raw + "x") is None
    assert ApiToken.objects.authenticate("r8_" + raw[4:]) is None
    user.is_active = False
    user.save()
    assert ApiToken.objects.authenticate(raw) is None


def test_last_used_is_written_at_most_once_a_minute() -> None:
    token, raw = ApiToken.create_for(UserFactory())
    ApiToken.objects.authenticate(raw)
    token.refresh_from_db()
    first = token.last_used_at
    ApiToken.objects.authenticate(raw)
    token.refresh_from_db()
    assert token.last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    ApiToken.objects.authenticate(raw)
    token.refresh_from_db()
    assert token.last_used_at > first


def test_createtoken_prints_a_working_token(capsys: pytest.CaptureFixture[str]) -> None:
    user = UserFactory(username="carol")
    call_command("createtoken", "carol")
    raw = capsys.readouterr().out.strip()
    assert ApiToken.objects.authenticate(raw).user == user


def test_createtoken_for_unknown_user_fails() -> None:
    with pytest.raises(Exception, match="No user named"):
        call_command("createtoken", "nobody")


def test_usernames_must_be_valid_namespaces() -> None:
    from django.core.exceptions import ValidationError

    user = UserFactory.build(username="Not Valid!")
    with pytest.raises(ValidationError):
        user.full_clean()
