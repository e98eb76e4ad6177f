"""Deployment pages with Django's test client: create, edit (a new release), the live page,
pre-warm and delete, CSRF, and 404 for outsiders."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from marketplace.audit.models import AuditEvent
from marketplace.deployments.models import Deployment
from marketplace.scheduling import starts
from tests.factories import FIXTURES, UserFactory, publish

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sleepy(user: Any) -> Any:
    return publish(user, FIXTURES / "cog" / "sleepy", name="sleepy")


@pytest.fixture
def owner(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form(base: Any, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "web-sleepy",
        "model": "alice/sleepy",
        "version": base.pk,
        "hardware": "cpu",
        "min_instances": 0,
        "max_instances": 2,
        "idle_timeout": "",
        **overrides,
    }


def test_create_edit_and_the_live_page(owner: Client, user: Any, sleepy: Any) -> None:
    page = owner.get(f"/deployments/new?model=alice/sleepy&version={sleepy.pk}").content.decode()
    assert 'value="alice/sleepy"' in page and sleepy.pk in page
    response = owner.post("/deployments/new", form(sleepy))
    assert response.status_code == 302 and response["Location"] == "/deployments/alice/web-sleepy"
    deployment = Deployment.objects.get()
    assert (deployment.min_instances, deployment.max_instances) == (0, 2)

    v2 = publish(user, FIXTURES / "cog" / "sleepy_v2", name="sleepy")
    response = owner.post(
        "/deployments/alice/web-sleepy/edit", form(sleepy, version=v2.pk, max_instances=3)
    )
    assert response.status_code == 302
    deployment.refresh_from_db()
    assert deployment.version_id == v2.pk and deployment.max_instances == 3
    assert deployment.releases.first().number == 2  # type: ignore[union-attr]

    page = owner.get("/deployments/alice/web-sleepy").content.decode()
    assert "Release</dt><dd>2" in page
    assert 'id="queued-count">0<' in page and 'id="live-count">0<' in page
    status = owner.get("/deployments/alice/web-sleepy/status").json()
    assert status == {
        "live": 0, "starting": 0, "stopping": 0, "queued": 0, "in_flight": 0, "instances": []
    }  # fmt: skip
    assert "alice/web-sleepy" in owner.get("/deployments").content.decode()

    owner.post("/deployments/alice/web-sleepy/prewarm", {"instances": "2"})
    assert owner.get("/deployments/alice/web-sleepy/status").json()["starting"] == 2
    assert starts.hardware_queue("cpu").count == 2


def test_bad_values_are_shown_next_to_their_fields(owner: Client, sleepy: Any) -> None:
    page = owner.post("/deployments/new", form(sleepy, version="f" * 64))
    assert page.status_code == 200 and "no such version" in page.content.decode()
    page = owner.post("/deployments/new", form(sleepy, max_instances=0))
    assert "Ensure this value is greater than or equal to 1" in page.content.decode()
    page = owner.post("/deployments/new", form(sleepy, min_instances=3, max_instances=2))
    assert "must not exceed max_instances" in page.content.decode()
    assert not Deployment.objects.exists()


def test_outsiders_get_404_and_forms_need_csrf(owner: Client, sleepy: Any) -> None:
    owner.post("/deployments/new", form(sleepy))
    outsider = Client()
    outsider.force_login(UserFactory(username="mallory"))
    for path in ("", "/edit", "/status"):
        assert outsider.get(f"/deployments/alice/web-sleepy{path}").status_code == 404
    for path in ("/prewarm", "/delete", "/edit"):
        assert outsider.post(f"/deployments/alice/web-sleepy{path}", {}).status_code == 404
    assert "web-sleepy" not in outsider.get("/deployments").content.decode()
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(Deployment.objects.get().owner.user)
    assert strict.post("/deployments/alice/web-sleepy/delete").status_code == 403
    assert Deployment.objects.exists()


def test_delete_from_the_page(owner: Client, sleepy: Any) -> None:
    owner.post("/deployments/new", form(sleepy))
    response = owner.post("/deployments/alice/web-sleepy/delete")
    assert response.status_code == 302 and response["Location"] == "/deployments"
    assert not Deployment.objects.exists()
    assert AuditEvent.objects.filter(action="deployment.delete").exists()
