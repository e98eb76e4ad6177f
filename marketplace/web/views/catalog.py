"""Explore, search, collections and profile pages."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from marketplace.accounts.models import Account, AnyUser
from marketplace.catalog import search as catalog_search
from marketplace.catalog.models import Collection, Hardware, Model
from marketplace.catalog.tags import top_tags
from marketplace.web.rendering import cards, highlight

SECTION_SIZE = 12
PAGE_SIZE = 24


def listed_models(user: AnyUser) -> QuerySet[Model]:
    """Models the user may see, with what a card shows (owner, hardware, the latest version's
    price), in one query: the latest version is kept on the model, nothing is aggregated."""
    return (
        Model.objects.visible_to(user)
        .select_related("owner", "default_hardware", "latest_version")
        .defer("readme", "latest_version__openapi_schema", "latest_version__cog_config")
    )


def explore(request: HttpRequest) -> HttpResponse:
    """Featured, popular and recent models, of one tag with ``?tag=``; a model shows in one
    section only, so a small catalog does not repeat the same cards."""
    models = listed_models(request.user)
    tag = request.GET.get("tag", "").strip().lower()[:32]
    if tag:
        models = models.filter(tags__name=tag)
    featured = list(models.filter(featured=True).order_by("-run_count", "pk")[:SECTION_SIZE])
    shown = [m.pk for m in featured]
    popular = list(models.exclude(pk__in=shown).order_by("-run_count", "pk")[:SECTION_SIZE])
    shown += [m.pk for m in popular]
    recent = list(models.exclude(pk__in=shown).order_by("-created_at", "-pk")[:SECTION_SIZE])
    cards(featured + popular + recent)  # pictures of all three sections in one query
    context = {
        "featured": featured,
        "popular": popular,
        "recent": recent,
        "tags": top_tags(),
        "tag": tag,
        "collections": list(Collection.objects.order_by("name")[:SECTION_SIZE]),
        "hardware": list(Hardware.objects.filter(is_active=True)),
    }
    return render(request, "web/explore.html", context)


def search(request: HttpRequest) -> HttpResponse:
    """The site's search: the API's ranking (members also find their private models), with
    filters for hardware, pricing, owner and tag."""
    models: QuerySet[Model] = Model.objects.visible_to(request.user)
    query = request.GET.get("q", "").strip()[:200]
    hardware = request.GET.get("hardware", "")
    pricing = request.GET.get("pricing", "")
    owner = request.GET.get("owner", "").strip()[:39]
    tag = request.GET.get("tag", "").strip().lower()[:32]
    if hardware:
        models = models.filter(default_hardware__sku=hardware)
    if pricing == "prediction":
        models = models.filter(latest_version__unit_price__isnull=False)
    elif pricing == "second":
        models = models.filter(Q(latest_version=None) | Q(latest_version__unit_price=None))
    if owner:
        models = models.filter(owner__username__iexact=owner)
    if tag:
        models = models.filter(tags__name=tag)
    counted = catalog_search.matching(models, query) if query else models
    models = catalog_search.ranked(models, query) if query else models.order_by("-run_count", "pk")
    # Rank ids only and count unscored matches, then load the page's cards: joining what a card
    # shows to every match before sorting cost more than the ranking.
    paginator = Paginator(models.values_list("pk", flat=True), PAGE_SIZE)
    paginator.count = counted.count()  # type: ignore[misc]
    page = paginator.get_page(request.GET.get("page"))
    found = listed_models(request.user).in_bulk(list(page.object_list))
    page.object_list = cards([found[pk] for pk in page.object_list if pk in found])
    for model in page.object_list:
        model.description_html = highlight(model.description_html, query)
        model.name_html = highlight(model.name, query)
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "page": page,
        "query": query,
        "filters": {"hardware": hardware, "pricing": pricing, "owner": owner, "tag": tag},
        "hardware": list(Hardware.objects.filter(is_active=True)),
        "tags": top_tags(),
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
    return render(request, "web/collection.html", {"collection": item, "models": cards(members)})


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
            "models": cards(models),
            "is_self": not account.is_organization and account.is_member(request.user),
            "is_org_member": account.is_organization and account.is_member(request.user),
            "can_write": account.can_write(request.user),
            "memberships": account.memberships.select_related("user").order_by("user__username")
            if account.is_organization and account.is_member(request.user)
            else [],
        },
    )
