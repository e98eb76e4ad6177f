"""Owner / member / read-only member / outsider / anonymous over every API endpoint and page that
touches an organisation's things: each gets exactly what its role allows, no more.

Each row is one request; ``expect`` lists the status for the roles in ``ROLES`` order. Members
call the API with a write token scoped to the organisation (so the role, not the token, is what
limits them; token scopes and permissions have their own tests in test_tokens.py), the outsider
with their own token, anonymous with none. Pages use a signed-in session.

Adding rows: append a ``Row`` to ``API_ROWS`` or
``PAGE_ROWS`` with the path (``{version}``, ``{prediction}``, ``{file}`` are filled in from the
world; add a field to ``World`` for new things) and the five statuses; ``check`` may assert on the
body. A private deployment of ``acme`` would read: GET → (200, 200, 200, 404, 401); POST/PATCH/
DELETE → (2xx, 2xx, 403, 404, 401).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings

from marketplace.billing.models import BillingAccount
from tests.orgs.conftest import ROLES, World


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    path: str
    expect: tuple[int, int, int, int, int]
    body: dict[str, Any] | None = None
    check: Callable[[World, str, Any], None] | None = None


def _account_type(world: World, role: str, response: Any) -> None:
    if role in ("owner", "member", "read_only"):
        assert response.json()["type"] == "organization"
        assert response.json()["username"] == "acme"
    elif role == "outsider":
        assert response.json() == {
            "type": "user",
            "username": "oscar",
            "name": "oscar",
            "github_url": None,
            "avatar_url": f"{settings.PUBLIC_URL}/avatars/oscar.svg",
        }


def _secret_is_the_orgs(world: World, role: str, response: Any) -> None:
    if role in ("owner", "member"):
        assert response.json()["key"] == world.org.webhook_secret
    elif role == "outsider":
        assert response.json()["key"] == world.users["outsider"].account.webhook_secret


def _trained_for_acme(world: World, role: str, response: Any) -> None:
    from marketplace.predictions.models import Prediction

    training = Prediction.objects.get(pk=response.json()["id"])
    assert training.account == world.org and training.kind == "training"
    assert training.destination is not None and training.destination.owner == world.org


def _lists_trainings(world: World, role: str, response: Any) -> None:
    ids = [t["id"] for t in response.json()["results"]]
    assert ids == ([world.training.pk] if role != "outsider" else [])


def _lists_org_predictions(world: World, role: str, response: Any) -> None:
    ids = [p["id"] for p in response.json()["results"]]
    assert ids == ([world.prediction.pk] if role != "outsider" else [])


def _search_is_public_only(world: World, role: str, response: Any) -> None:
    names = {m["model"]["name"] for m in response.json()["models"]}
    # The API's search is over public models only, as the reference says (the site's search
    # shows members their private ones).
    assert "open" in names and "secret" not in names and "diary" not in names


def _collection_lists_public_only(world: World, role: str, response: Any) -> None:
    # The API's collections are public lists: private members are left out for everyone.
    assert [m["name"] for m in response.json()["models"]] == ["open"]


def _quote(world: World, role: str, response: Any) -> None:
    if response.status_code == 200:
        assert response.json()["model"] == "acme/secret"


def _billing_is_the_orgs(world: World, role: str, response: Any) -> None:
    if role == "owner":
        assert response.json()["mode"] == BillingAccount.Mode.POSTPAID


def _earnings_are_own(world: World, role: str, response: Any) -> None:
    assert response.json()["account"] == ("acme" if role == "owner" else "oscar")


def _created_for_acme(world: World, role: str, response: Any) -> None:
    if response.status_code == 201:
        assert response.json()["owner"] == "acme"


def _billed_to_acme(world: World, role: str, response: Any) -> None:
    from marketplace.predictions.models import Prediction

    if response.status_code == 201:
        prediction = Prediction.objects.get(pk=response.json()["id"])
        assert prediction.account_id == world.org.pk
        assert prediction.created_by == world.users[role]


PREDICT = {"input": {"text": "matrix"}}


def _deployments(world: World, role: str, response: Any) -> None:
    names = [(d["owner"], d["name"]) for d in response.json()["results"]]
    assert names == ([("acme", "prod")] if role != "outsider" else [])


def _deployment_is_the_orgs(world: World, role: str, response: Any) -> None:
    assert response.json()["owner"] == "acme"


def _deployment_prediction_billed_to_org(world: World, role: str, response: Any) -> None:
    from marketplace.predictions.models import Prediction

    prediction = Prediction.objects.get(pk=response.json()["id"])
    assert prediction.account_id == world.org.pk
    assert prediction.deployment_id == world.deployment.pk
    assert prediction.created_by == world.users[role]


def _audit_is_own(world: World, role: str, response: Any) -> None:
    events = response.json()["results"]
    if role == "owner":
        # Publishing acme/secret's version was recorded for acme.
        assert ("version.create", "acme") in [(e["action"], e["account"]) for e in events]
        assert {e["account"] for e in events} == {"acme"}
    else:
        assert all(e["account"] == "oscar" for e in events)


API_ROWS = [
    Row("account", "get", "/v1/account", (200, 200, 200, 200, 401), check=_account_type),
    Row("model get", "get", "/v1/models/acme/secret", (200, 200, 200, 404, 401)),
    Row("model public", "get", "/v1/models/acme/open", (200, 200, 200, 200, 401)),
    Row(
        "model patch",
        "patch",
        "/v1/models/acme/secret",
        (200, 200, 403, 404, 401),
        body={"description": "changed"},
    ),
    # Permitted callers reach the "has versions" rule (409); the others are refused before it.
    Row("model delete", "delete", "/v1/models/acme/secret", (409, 409, 403, 404, 401)),
    Row("model readme", "get", "/v1/models/acme/secret/readme", (200, 200, 200, 404, 401)),
    Row("model examples", "get", "/v1/models/acme/secret/examples", (200, 200, 200, 404, 401)),
    Row(
        "model create",
        "post",
        "/v1/models",
        (201, 201, 403, 403, 401),
        body={"owner": "acme", "name": "fresh", "hardware": "cpu", "visibility": "private"},
        check=_created_for_acme,
    ),
    Row("versions list", "get", "/v1/models/acme/secret/versions", (200, 200, 200, 404, 401)),
    Row(
        "version get",
        "get",
        "/v1/models/acme/secret/versions/{version}",
        (200, 200, 200, 404, 401),
    ),
    Row(
        "version delete",
        "delete",
        "/v1/models/acme/secret/versions/{version}",
        (202, 202, 403, 404, 401),
    ),
    Row(
        "prediction create",
        "post",
        "/v1/predictions",
        (201, 201, 403, 422, 401),
        body={"version": "acme/secret", **PREDICT},
        check=_billed_to_acme,
    ),
    Row(
        "model prediction create",
        "post",
        "/v1/models/acme/secret/predictions",
        (201, 201, 403, 404, 401),
        body=PREDICT,
        check=_billed_to_acme,
    ),
    Row(
        "predictions list",
        "get",
        "/v1/predictions",
        (200, 200, 200, 200, 401),
        check=_lists_org_predictions,
    ),
    Row("prediction get", "get", "/v1/predictions/{prediction}", (200, 200, 200, 404, 401)),
    Row(
        "prediction cancel",
        "post",
        "/v1/predictions/{prediction}/cancel",
        (200, 200, 403, 404, 401),
    ),
    Row(
        "prediction webhooks",
        "get",
        "/v1/predictions/{prediction}/webhooks",
        (200, 200, 200, 404, 401),
    ),
    Row(
        "training create",
        "post",
        "/v1/models/acme/trainable/versions/{trainable}/trainings",
        (201, 201, 403, 404, 401),
        body={"destination": "acme/tuned", "input": {"phrase": "x"}},
        check=_trained_for_acme,
    ),
    Row(
        "trainings list", "get", "/v1/trainings", (200, 200, 200, 200, 401), check=_lists_trainings
    ),
    Row("training get", "get", "/v1/trainings/{training}", (200, 200, 200, 404, 401)),
    Row("training cancel", "post", "/v1/trainings/{training}/cancel", (200, 200, 403, 404, 401)),
    Row(
        "webhook secret",
        "get",
        "/v1/webhooks/default/secret",
        (200, 200, 403, 200, 401),
        check=_secret_is_the_orgs,
    ),
    Row("billing", "get", "/v1/billing", (200, 403, 403, 200, 401), check=_billing_is_the_orgs),
    # Earnings of the token's account: its owners only (outsiders read their own).
    Row("earnings", "get", "/v1/earnings", (200, 404, 404, 200, 401), check=_earnings_are_own),
    Row("earnings of acme", "get", "/v1/earnings?account=acme", (200, 404, 404, 404, 401)),
    Row(
        "billing quote",
        "get",
        "/v1/billing/quote?version=acme/secret",
        (200, 200, 200, 404, 401),
        check=_quote,
    ),
    Row("file get", "get", "/v1/files/{file}", (200, 200, 200, 404, 401)),
    Row("file download", "get", "/v1/files/{file}/download", (200, 200, 200, 404, 404)),
    Row("file delete", "delete", "/v1/files/{file}", (204, 204, 403, 404, 401)),
    Row("files list", "get", "/v1/files", (200, 200, 200, 200, 401)),
    Row("collections", "get", "/v1/collections", (200, 200, 200, 200, 401)),
    Row(
        "collection",
        "get",
        "/v1/collections/tools",
        (200, 200, 200, 200, 401),
        check=_collection_lists_public_only,
    ),
    # The audit log of the token's account: its owners only (outsiders read their own).
    Row("audit", "get", "/v1/audit", (200, 404, 404, 200, 401), check=_audit_is_own),
    Row("audit of acme", "get", "/v1/audit?account=acme", (200, 404, 404, 404, 401)),
    Row("deployments", "get", "/v1/deployments", (200, 200, 200, 200, 401), check=_deployments),
    Row("deployment get", "get", "/v1/deployments/acme/prod", (200, 200, 200, 404, 401)),
    Row(
        "deployment create",
        "post",
        "/v1/deployments",
        # The outsider acts for their own account, where acme/secret does not exist for them.
        (201, 201, 403, 422, 401),
        body={
            "name": "staging",
            "model": "acme/secret",
            "version": "{version}",
            "hardware": "cpu",
            "min_instances": 0,
            "max_instances": 1,
        },
        check=_deployment_is_the_orgs,
    ),
    Row(
        "deployment update",
        "patch",
        "/v1/deployments/acme/prod",
        (200, 200, 403, 404, 401),
        body={"max_instances": 2},
    ),
    Row(
        "deployment prediction",
        "post",
        "/v1/deployments/acme/prod/predictions",
        (201, 201, 403, 404, 401),
        body={"input": {"text": "hi"}},
        check=_deployment_prediction_billed_to_org,
    ),
    Row(
        "deployment prewarm",
        "post",
        "/v1/deployments/acme/prod/prewarm",
        (202, 202, 403, 404, 401),
        body={"instances": 1},
    ),
    Row("deployment delete", "delete", "/v1/deployments/acme/prod", (204, 204, 403, 404, 401)),
    Row(
        "search",
        "get",
        "/v1/search?query=acme",
        (200, 200, 200, 200, 200),
        check=_search_is_public_only,
    ),
]


def _path(world: World, row: Row) -> str:
    return row.path.format(
        version=world.version.pk,
        prediction=world.prediction.pk,
        file=world.file.pk,
        trainable=world.trainable.pk,
        training=world.training.pk,
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("row", API_ROWS, ids=lambda r: r.name)
def test_api(world: World, row: Row, role: str) -> None:
    client = world.api(role)
    call = getattr(client, row.method)
    body = {
        k: v.format(version=world.version.pk) if isinstance(v, str) else v
        for k, v in (row.body or {}).items()
    }
    response = call(_path(world, row), body, format="json") if body else call(_path(world, row))
    expected = row.expect[ROLES.index(role)]
    assert response.status_code == expected, (role, response.status_code, response.content[:300])
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/problem+json")
    elif row.check is not None:
        row.check(world, role, response)


def _login_redirect(world: World, role: str, response: Any) -> None:
    if role == "anonymous":
        assert "/account/login" in response["Location"]


def _profile(world: World, role: str, response: Any) -> None:
    html = response.content.decode()
    member = role in ("owner", "member", "read_only")
    assert ("acme/secret" in html or 'href="/acme/secret"' in html) == member
    assert ("rita" in html) == member  # members are listed to members only
    assert 'href="/acme/open"' in html


def _shows_secret_to_members(world: World, role: str, response: Any) -> None:
    """Listings show the org's private model (or its prediction) to its members only."""
    if response.status_code != 200:
        return
    html = response.content.decode()
    member = role in ("owner", "member", "read_only")
    if "/account/predictions" in response.request["PATH_INFO"]:
        assert (world.prediction.pk in html) == member
    else:
        assert ('href="/acme/secret"' in html) == member
        assert 'href="/acme/open"' in html


def _run_redirects_to_prediction(world: World, role: str, response: Any) -> None:
    from marketplace.predictions.models import Prediction

    if response.status_code == 302 and role in ("owner", "member"):
        prediction = Prediction.objects.get(pk=response["Location"].rsplit("/", 1)[-1])
        assert prediction.account_id == world.org.pk and prediction.source == "web"


def _lists_prod_to_members(world: World, role: str, response: Any) -> None:
    html = response.content.decode()
    assert ("/deployments/acme/prod" in html) == (role in ("owner", "member", "read_only"))


def _transferred(world: World, role: str, response: Any) -> None:
    if role in ("owner", "member"):
        world.secret.refresh_from_db()
        assert world.secret.owner == world.users[role].personal_account
        assert response["Location"] == f"/{world.users[role].username}/secret"


PAGE_ROWS = [
    Row("model page", "get", "/acme/secret", (200, 200, 200, 404, 404)),
    Row("model api tab", "get", "/acme/secret/api", (200, 200, 200, 404, 404)),
    Row("model versions tab", "get", "/acme/secret/versions", (200, 200, 200, 404, 404)),
    Row("model examples tab", "get", "/acme/secret/examples", (200, 200, 200, 404, 404)),
    Row("model edit", "get", "/acme/secret/edit", (200, 200, 404, 404, 302), check=_login_redirect),
    Row("model push tab", "get", "/acme/secret/push", (200, 200, 404, 404, 302)),
    Row(
        "version price",
        "post",
        "/acme/secret/versions/{version}/price",
        (302, 302, 404, 404, 302),
        body={"unit_price": "0.01", "price_unit": "prediction"},
    ),
    Row(
        "playground run as acme",
        "post",
        "/acme/secret/run",
        (302, 302, 404, 404, 302),
        body={"text": "web", "account": "acme"},
        check=_run_redirects_to_prediction,
    ),
    Row("prediction page", "get", "/p/{prediction}", (200, 200, 200, 404, 404)),
    Row("prediction json", "get", "/p/{prediction}/json", (200, 200, 200, 404, 404)),
    Row("prediction cancel", "post", "/p/{prediction}/cancel", (302, 302, 403, 404, 302)),
    Row("profile", "get", "/acme", (200, 200, 200, 200, 200), check=_profile),
    Row(
        "members page",
        "get",
        "/account/organizations/acme/members",
        (200, 200, 200, 404, 302),
    ),
    Row(
        "invite",
        "post",
        "/account/organizations/acme/invite",
        (302, 403, 403, 404, 302),
        body={"who": "nina@example.com", "role": "member"},
    ),
    Row(
        "change role",
        "post",
        "/account/organizations/acme/members/mia/role",
        (302, 403, 403, 404, 302),
        body={"role": "read_only"},
    ),
    Row("billing page", "get", "/billing/?account=acme", (200, 404, 404, 404, 302)),
    Row("usage csv", "get", "/billing/usage.csv?account=acme", (200, 404, 404, 404, 302)),
    Row(
        "billing caps",
        "post",
        "/billing/caps?account=acme",
        (302, 404, 404, 404, 302),
        body={"monthly_cap": "50"},
    ),
    Row("earnings page", "get", "/billing/earnings/?account=acme", (200, 404, 404, 404, 302)),
    Row(
        "earnings statement",
        "get",
        "/billing/earnings/statement.csv?account=acme",
        (200, 404, 404, 404, 302),
    ),
    Row(
        "earnings connect",
        "post",
        "/billing/earnings/connect?account=acme",
        (302, 404, 404, 404, 302),
    ),
    Row(
        "earnings connect refresh",
        "get",
        "/billing/earnings/connect/refresh?account=acme",
        (302, 404, 404, 404, 302),
    ),
    Row(
        "earnings dashboard",
        "post",
        "/billing/earnings/dashboard?account=acme",
        (302, 404, 404, 404, 302),
    ),
    Row("tokens page", "get", "/account/tokens", (200, 200, 200, 200, 302)),
    Row(
        "prediction history",
        "get",
        "/account/predictions",
        (200, 200, 200, 200, 302),
        check=_shows_secret_to_members,
    ),
    Row(
        "search", "get", "/search?q=acme", (200, 200, 200, 200, 200), check=_shows_secret_to_members
    ),
    Row(
        "collection page",
        "get",
        "/collections/tools",
        (200, 200, 200, 200, 200),
        check=_shows_secret_to_members,
    ),
    Row("audit page", "get", "/account/audit?account=acme", (200, 404, 404, 404, 302)),
    Row("deployment page", "get", "/deployments/acme/prod", (200, 200, 200, 404, 302)),
    Row("deployment edit", "get", "/deployments/acme/prod/edit", (200, 200, 404, 404, 302)),
    Row(
        "deployments list page",
        "get",
        "/deployments",
        (200, 200, 200, 200, 302),
        check=_lists_prod_to_members,
    ),
    Row(
        "transfer to self",
        "post",
        "/acme/secret/transfer",
        (302, 302, 404, 404, 302),
        body={"to": "{me}"},
        check=_transferred,
    ),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("row", PAGE_ROWS, ids=lambda r: r.name)
def test_pages(world: World, row: Row, role: str) -> None:
    client = world.site(role)
    me = world.users[role].username if role in world.users else ""
    body = {k: v.replace("{me}", me) for k, v in (row.body or {}).items()}
    response = getattr(client, row.method)(_path(world, row), body)
    expected = row.expect[ROLES.index(role)]
    assert response.status_code == expected, (role, response.status_code, response.content[:300])
    if row.check is not None and response.status_code < 400:
        row.check(world, role, response)
