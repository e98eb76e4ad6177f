"""Who sees the audit log: an account's owners see its events (``/account/audit``, ``GET
/v1/audit``), staff see every account's (``/ops/audit/``); everyone else gets 404."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.accounts.models import Account, User, signed_in
from marketplace.accounts.validators import NAMESPACE_RE
from marketplace.api.errors import Problem
from marketplace.api.pagination import CursorPage
from marketplace.audit.models import AuditEvent
from marketplace.isotime import iso

PAGE_SIZE = 50
# Names are looked up case-insensitively, as everywhere.
_NAME = re.compile(NAMESPACE_RE, re.IGNORECASE)


def events_for(user: User, account_name: str | None) -> tuple[Account | None, QuerySet[AuditEvent]]:
    """The account asked for (default: the user's own) and its events, if the user owns it.
    Raises LookupError for an account the user may not see (callers answer 404)."""
    if account_name and not _NAME.match(account_name):
        raise LookupError(account_name)  # not a name at all (e.g. a NUL byte PostgreSQL refuses)
    account = (
        Account.objects.filter(username__iexact=account_name).first()
        if account_name
        else user.account
    )
    if account is None or not (account.can_admin(user) or user.is_staff):
        raise LookupError(account_name)
    return account, _events().filter(account=account)


def _events() -> QuerySet[AuditEvent]:
    return AuditEvent.objects.select_related("actor", "account")


def to_api(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "created_at": iso(event.created_at),
        "action": event.action,
        "actor": event.actor.username if event.actor else None,
        "account": event.account.username if event.account else None,
        "target": {"type": event.target_type, "id": event.target_id, "name": event.target_repr},
        "data": event.data,
        "ip": event.ip,
    }


@login_required
def account_audit(request: HttpRequest) -> HttpResponse:
    user = signed_in(request.user)
    try:
        account, events = events_for(user, request.GET.get("account"))
    except LookupError as exc:
        raise Http404("No such account") from exc
    return _render(request, events, account)


@login_required
def staff_audit(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise Http404
    events = _events()
    action = request.GET.get("action", "").strip()
    if action:
        events = events.filter(action__startswith=action)
    return _render(request, events, None)


def _render(request: HttpRequest, events: QuerySet[AuditEvent], account: Account | None) -> Any:
    page = Paginator(events.order_by("-created_at", "-id"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "web/audit.html",
        {"page": page, "account": account, "querystring": params.urlencode()},
    )


class AuditApi(APIView):
    @extend_schema(
        operation_id="audit.list",
        parameters=[OpenApiParameter("account", str, description="default: your own account")],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        try:
            _, events = events_for(signed_in(request.user), request.query_params.get("account"))
        except LookupError as exc:
            raise Problem(404, "Account not found") from exc
        paginator = CursorPage()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response([to_api(e) for e in page or []])
