"""The audit log: what people do to models, versions, tokens and billing settings is recorded,
and shown to the account's owners and to staff; anyone else gets 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from marketplace.accounts.models import ApiToken
from marketplace.audit.models import AuditEvent
from tests.factories import UserFactory, publish

pytestmark = pytest.mark.django_db


def actions(account: Any) -> list[str]:
    return list(
        AuditEvent.objects.filter(account=account).order_by("id").values_list("action", flat=True)
    )


def test_model_and_version_changes_through_the_api_are_recorded(api: APIClient, user: Any) -> None:
    body = {"owner": "alice", "name": "new", "visibility": "private", "hardware": "cpu"}
    assert api.post("/v1/models", body, format="json").status_code == 201
    assert api.patch("/v1/models/alice/new", {"readme": "# Hi"}, format="json").status_code == 200
    version = publish(user, "hello", "new")
    assert api.delete(f"/v1/models/alice/new/versions/{version.pk}").status_code == 202
    assert api.delete("/v1/models/alice/new").status_code == 204

    assert actions(user.account) == [
        "model.create",
        "model.update",
        "version.create",
        "version.delete",
        "model.delete",
    ]
    create = AuditEvent.objects.filter(action="model.create").get()
    assert create.actor == user and create.target_repr == "alice/new"
    assert create.data == {"visibility": "private", "via": "api"}
    update = AuditEvent.objects.filter(action="model.update").first()
    assert update is not None and update.data == {"fields": ["readme"]}
    assert AuditEvent.objects.get(action="version.delete").data == {"model": "alice/new"}
    # The deleted model is still named in its events.
    assert AuditEvent.objects.get(action="model.delete").target_repr == "alice/new"


def test_visibility_changes_on_the_site_are_recorded(user: Any, alice_client: Client) -> None:
    publish(user, "hello")
    edit = {"description": "d", "readme": "", "visibility": "private"}
    assert alice_client.post("/alice/hello/edit", edit).status_code == 302
    assert actions(user.account)[-2:] == ["model.update", "model.visibility"]
    change = AuditEvent.objects.get(action="model.visibility")
    assert change.data == {"visibility": "private"} and change.actor == user
    assert AuditEvent.objects.filter(action="model.update").get().data == {
        "fields": ["description", "readme", "visibility"]
    }


def test_tokens_and_billing_settings_from_the_site_are_recorded(
    user: Any, alice_client: Client
) -> None:
    assert alice_client.post("/account/tokens", {"name": "laptop"}).status_code == 302
    token = ApiToken.objects.get(user=user, name="laptop")
    caps = {"monthly_cap": "25", f"token_cap_{token.pk}": "2.5"}
    assert alice_client.post("/billing/caps", caps).status_code == 302
    assert alice_client.post("/billing/caps", caps).status_code == 302  # unchanged: not logged
    assert alice_client.post(f"/account/tokens/{token.pk}/revoke").status_code == 302

    assert actions(user.account) == [
        "token.create",
        "billing.monthly_cap",
        "billing.token_cap",
        "token.revoke",
    ]
    cap = AuditEvent.objects.get(action="billing.monthly_cap")
    assert cap.data == {"monthly_cap": "25.00", "previous": None}
    assert cap.actor == user and cap.ip == "127.0.0.1"
    revoke = AuditEvent.objects.get(action="token.revoke")
    assert revoke.target_id == str(token.pk) and "laptop" in revoke.target_repr
    # The raw key is never in the log.
    assert all(ApiToken.PREFIX not in str(e.data) for e in AuditEvent.objects.all())


def test_owners_see_their_log_staff_see_all_and_outsiders_get_404(
    user: Any, alice_client: Client, api: APIClient, outsider_api: APIClient
) -> None:
    api.post(
        "/v1/models",
        {"owner": "alice", "name": "secret-plan", "visibility": "private", "hardware": "cpu"},
        format="json",
    )
    page = alice_client.get("/account/audit")
    assert page.status_code == 200 and "secret-plan" in page.content.decode()
    listed = api.get("/v1/audit").json()
    assert [e["action"] for e in listed["results"]] == ["model.create"]
    assert listed["results"][0]["actor"] == "alice"
    assert listed["results"][0]["target"]["name"] == "alice/secret-plan"

    mallory = Client()
    mallory.force_login(UserFactory(username="mallory"))
    assert mallory.get("/account/audit?account=alice").status_code == 404
    assert "secret-plan" not in mallory.get("/account/audit").content.decode()
    assert mallory.get("/ops/audit/").status_code == 404
    assert outsider_api.get("/v1/audit?account=alice").status_code == 404
    assert outsider_api.get("/v1/audit").json()["results"] == []
    assert Client().get("/account/audit").status_code == 302  # to the login page

    staff = Client()
    staff.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    assert "secret-plan" in staff.get("/ops/audit/").content.decode()
    assert staff.get("/account/audit?account=alice").status_code == 200
    admin_list = staff.get("/admin/audit/auditevent/")
    assert admin_list.status_code == 200 and "secret-plan" in admin_list.content.decode()
    assert staff.get("/admin/audit/auditevent/add/").status_code == 403
