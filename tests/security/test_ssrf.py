"""SSRF: webhooks and URL inputs into internal networks are refused by default, at create and at
delivery; the allow-list lets a self-hoster's own networks through; the platform's own file URLs
and the agent's hook server keep working with the default (empty) allow-list.

The rest of the suite runs with loopback allowed (tests/settings.py); every test here empties or
sets the allow-list itself.
"""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.test import override_settings
from PIL import Image
from rest_framework.test import APIClient

from marketplace import netguard
from marketplace.billing.models import Reservation, UsageEntry
from marketplace.predictions import webhooks
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_finish
from marketplace.predictions.webhooks import WebhookDelivery
from tests.api.test_webhooks import Receiver
from tests.factories import publish, token_for

pytestmark = pytest.mark.django_db(transaction=True)

DEFAULT = override_settings(OUTBOUND_ALLOW_CIDRS=[], OUTBOUND_ALLOW_HOSTS=[])

INTERNAL = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "0.0.0.0",  # noqa: S104
    "::",
    "224.0.0.1",
    "ff02::1",
    "240.0.0.1",
    "255.255.255.255",
    "100.64.0.1",  # CGNAT
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address
    "198.18.0.1",  # benchmarking
    "192.0.2.1",  # documentation
]


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver([])
    yield receiver
    receiver.close()


PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "151.101.1.69"]


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not netguard.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are(address: str) -> None:
    assert netguard.is_public(ipaddress.ip_address(address))


@DEFAULT
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",  # a name that resolves to loopback
        "http://[::1]:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/",  # 127.0.0.1 as one decimal number
        "http://0x7f.1/",  # and in hex shorthand
        "http://10.0.0.5:6379/",
        "http://[::ffff:7f00:1]/",
        "https://192.168.0.1/",
    ],
)
def test_check_url_refuses_internal_targets(url: str) -> None:
    with pytest.raises(netguard.Refused, match="internal address"):
        netguard.check_url(url)


def test_check_url_refuses_other_schemes_and_unresolvable_names() -> None:
    for url in ("file:///etc/passwd", "gopher://x/", "http:///nohost"):
        with pytest.raises(netguard.Refused, match="only http and https"):
            netguard.check_url(url)
    with pytest.raises(netguard.Refused, match="cannot be resolved"):
        netguard.check_url("http://does-not-exist.invalid/")
    assert netguard.check_url("http://does-not-exist.invalid/", unresolvable_ok=True) is None


@override_settings(OUTBOUND_ALLOW_CIDRS=["10.20.0.0/16", "fd00:1::/64"], OUTBOUND_ALLOW_HOSTS=[])
def test_allowed_networks_let_only_themselves_through() -> None:
    assert netguard.check_url("http://10.20.3.4/hook") is not None
    assert netguard.check_url("http://[fd00:1::5]/hook") is not None
    for url in ("http://10.21.0.1/", "http://127.0.0.1/", "http://169.254.169.254/"):
        with pytest.raises(netguard.Refused):
            netguard.check_url(url)


@override_settings(OUTBOUND_ALLOW_CIDRS=[], OUTBOUND_ALLOW_HOSTS=["localhost"])
def test_allowed_host_names_pass_whatever_they_resolve_to() -> None:
    target = netguard.check_url("http://LOCALHOST:8080/hook")
    assert target is not None and target.address.is_loopback
    with pytest.raises(netguard.Refused):
        netguard.check_url("http://127.0.0.1:8080/hook")


def _create(api: APIClient, version: Any, **body: Any) -> Any:
    return api.post("/v1/predictions", {"version": version.id, **body}, format="json")


def _nothing_stored() -> bool:
    return (
        not Prediction.objects.exists()
        and not Reservation.objects.exists()
        and not UsageEntry.objects.exists()
    )


@DEFAULT
@pytest.mark.parametrize(
    "hook", ["http://127.0.0.1:9/hook", "http://localhost:9/", "http://169.254.169.254/x"]
)
def test_create_refuses_an_internal_webhook_naming_the_field(
    api: APIClient, user: Any, hook: str
) -> None:
    response = _create(api, publish(user, "hello"), input={"text": "x"}, webhook=hook)
    assert response.status_code == 422, response.json()
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert [f["field"] for f in problem["invalid_fields"]] == ["webhook"]
    assert "internal address" in problem["detail"]
    assert _nothing_stored()


@DEFAULT
def test_create_refuses_internal_url_inputs_naming_each_field(api: APIClient, user: Any) -> None:
    version = publish(user, "image-filter")
    response = _create(api, version, input={"image": "http://169.254.169.254/latest/user-data"})
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["invalid_fields"]] == ["input.image"]
    # Both the webhook and the input are named in one answer.
    response = _create(
        api, version, input={"image": "http://10.0.0.1/a.png"}, webhook="http://[::1]/h"
    )
    assert response.status_code == 422
    assert sorted(f["field"] for f in response.json()["invalid_fields"]) == [
        "input.image",
        "webhook",
    ]
    assert _nothing_stored()


@DEFAULT
def test_create_accepts_public_names_and_data_uris(api: APIClient, user: Any) -> None:
    version = publish(user, "image-filter")
    # Names that do not resolve here are not refused at create (delivery checks again).
    ok = _create(api, version, input={"image": "https://images.example.invalid/a.png"}, webhook="")
    assert ok.status_code == 201, ok.json()
    ok = _create(api, version, input={"image": "data:image/png;base64,iVBORw0KGgo="})
    assert ok.status_code == 201, ok.json()


@override_settings(OUTBOUND_ALLOW_CIDRS=["127.0.0.0/8"], OUTBOUND_ALLOW_HOSTS=[])
def test_allow_list_lets_a_self_hosters_receiver_through(api: APIClient, user: Any) -> None:
    response = _create(
        api, publish(user, "hello"), input={"text": "x"}, webhook="http://127.0.0.1:9/h"
    )
    assert response.status_code == 201, response.json()


def test_delivery_checks_again_and_refuses_without_sending(
    api: APIClient, user: Any, hook: Receiver, settings: Any
) -> None:
    settings.OUTBOUND_ALLOW_CIDRS = ["127.0.0.0/8"]
    created = _create(api, publish(user, "hello"), input={"text": "x"}, webhook=hook.url)
    assert created.status_code == 201
    prediction_finish(created.json()["id"], Outcome("succeeded", output="hello x"))
    delivery = WebhookDelivery.objects.get(event=webhooks.COMPLETED)
    # The operator narrows the allow-list (or the name now resolves elsewhere): refused.
    settings.OUTBOUND_ALLOW_CIDRS = []
    attempt = webhooks.deliver(delivery.pk)
    assert attempt is not None and attempt.response_status is None
    assert attempt.error.startswith("Refused: the host 127.0.0.1 is an internal address")
    assert hook.requests == []
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING and delivery.next_attempt_at


def test_delivery_connects_to_the_checked_address_with_the_name_as_host(
    api: APIClient, user: Any, hook: Receiver, settings: Any
) -> None:
    port = hook.server.server_address[1]
    settings.OUTBOUND_ALLOW_HOSTS = ["localhost"]
    settings.OUTBOUND_ALLOW_CIDRS = []
    url = f"http://localhost:{port}/hook"
    created = _create(api, publish(user, "hello"), input={"text": "x"}, webhook=url)
    assert created.status_code == 201, created.json()
    prediction_finish(created.json()["id"], Outcome("succeeded", output="hello x"))
    attempt = webhooks.deliver(WebhookDelivery.objects.get(event=webhooks.COMPLETED).pk)
    assert attempt is not None and attempt.ok, attempt and attempt.error
    [(path, headers, _)] = hook.requests
    assert path == "/hook" and headers["Host"] == f"localhost:{port}"


def test_pinned_request_sends_https_to_the_address_with_sni_of_the_name(settings: Any) -> None:
    """The request goes to the checked IP while TLS verifies the name: a certificate for
    another name fails verification rather than being accepted for the IP."""
    settings.OUTBOUND_ALLOW_HOSTS = ["localhost"]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        response = netguard.pinned_request(client, "POST", "https://localhost:8443/h?a=1")
    assert response.status_code == 204
    [request] = seen
    assert request.url.host in ("127.0.0.1", "::1") and request.url.port == 8443
    assert request.url.query == b"a=1"
    assert request.headers["Host"] == "localhost:8443"
    assert request.extensions["sni_hostname"] == "localhost"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 20), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_own_file_urls_and_agent_hooks_work_with_the_default_allow_list(
    user: Any, start_web: Any, start_agent: Any
) -> None:
    """Live stack, every process with an empty allow-list: an uploaded file (a loopback URL of
    the platform itself) reaches the model server, whose webhooks reach its agent; an internal
    webhook is still refused by the live server."""
    web = start_web(OUTBOUND_ALLOW_CIDRS="", OUTBOUND_ALLOW_HOSTS="")
    start_agent(OUTBOUND_ALLOW_CIDRS="", OUTBOUND_ALLOW_HOSTS="", PUBLIC_URL=web.url)
    version = publish(user, "image-filter")
    headers = {"Authorization": f"Bearer {token_for(user)}"}
    with httpx.Client(base_url=web.url, headers=headers, timeout=90) as client:
        uploaded = client.post("/v1/files", files={"content": ("in.png", _png(), "image/png")})
        assert uploaded.status_code == 201, uploaded.text
        file_url = uploaded.json()["urls"]["get"]
        assert file_url.startswith(web.url)
        body = {"version": version.id, "input": {"image": file_url, "size": 20}}
        response = client.post("/v1/predictions", json=body, headers={"Prefer": "wait=60"})
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "succeeded", response.json()
        refused = client.post("/v1/predictions", json={**body, "webhook": f"{web.url}/anything"})
        assert refused.status_code == 422
        assert refused.json()["invalid_fields"][0]["field"] == "webhook"
    assert Prediction.objects.count() == 1
