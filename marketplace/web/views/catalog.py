"""Explore, search, collections and profile pages."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from marketplace.accounts.models import Account, AnyUser
from marketplace.catalog.models import Collection, Hardware, Model, Version
from marketplace.web.rendering import describe

SECTION_SIZE = 12
PAGE_SIZE = 24


def listed_models(user: AnyUser) -> QuerySet[Model]:
    """Models the user may see, with what a card shows, in a fixed number of queries."""
    latest = Version.objects.filter(model=OuterRef("pk"), hidden=False).order_by("-created_at")
    return (
        Model.objects.visible_to(user)
        .select_related("owner", "default_hardware")
        .defer("readme")
        .annotate(unit_price=Subquery(latest.values("unit_price")[:1]))
        .annotate(price_unit=Subquery(latest.values("price_unit")[:1]))
    )


def explore(request: HttpRequest) -> HttpResponse:
    models = listed_models(request.user)
    context = {
        "featured": describe(
            models.filter(featured=True).order_by("-run_count", "pk")[:SECTION_SIZE]
        ),
        "popular": describe(models.order_by("-run_count", "pk")[:SECTION_SIZE]),
        "recent": describe(models.order_by("-created_at", "-pk")[:SECTION_SIZE]),
        "collections": list(Collection.objects.order_by("name")[:SECTION_SIZE]),
        "hardware": list(Hardware.objects.filter(is_active=True)),
    }
    return render(request, "web/explore.html", context)


def search(request: HttpRequest) -> HttpResponse:
    models = listed_models(request.user)
    query = request.GET.get("q", "").strip()[:200]
    hardware = request.GET.get("hardware", "")
    pricing = request.GET.get("pricing", "")
    owner = request.GET.get("owner", "").strip()[:39]
    if query:
        models = models.filter(
            Q(name__icontains=query)
            | Q(description__icontains=query)
            | Q(owner__username__icontains=query)
        )
    if hardware:
        models = models.filter(default_hardware__sku=hardware)
    if pricing == "prediction":
        models = models.filter(unit_price__isnull=False)  # type: ignore[misc]
    elif pricing == "second":
        models = models.filter(unit_price__isnull=True)  # type: ignore[misc]
    if owner:
        models = models.filter(owner__username__iexact=owner)
    page = Paginator(models.order_by("-run_count", "pk"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    page.object_list = describe(page.object_list)
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "page": page,
        "query": query,
        "filters": {"hardware": hardware, "pricing": pricing, "owner": owner},
        "hardware": list(Hardware.objects.filter(is_active=True)),
        "querystring": params.urlencode(),
    }
    return render(request, "web/search.html", context)


def collections(request: HttpRequest) -> HttpResponse:
    return render(
        request, "web/collections.html", {"collections": Collection.objects.order_by("name")}
    )


def collection(request: HttpRequest, slug: str) -> HttpResponse:
    item = get_object_or_404(Collection, slug=slug)
    members = listed_models(request.user).filter(collections=item).order_by("-run_count", "pk")
    return render(request, "web/collection.html", {"collection": item, "models": describe(members)})


def profile(request: HttpRequest, username: str) -> HttpResponse:
    account = Account.objects.filter(username__iexact=username).first()
    if account is None:
        raise Http404("No such account")
    models = listed_models(request.user).filter(owner=account).order_by("-run_count", "pk")
    return render(
        request,
        "web/profile.html",
        {
            "account": account,
            "models": describe(models),
            "is_self": not account.is_organization and account.is_member(request.user),
            "is_org_member": account.is_organization and account.is_member(request.user),
            "can_write": account.can_write(request.user),
            "memberships": account.memberships.select_related("user").order_by("user__username")
            if account.is_organization and account.is_member(request.user)
            else [],
        },
    )
