from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from marketplace.catalog.models import Model


def home(request: HttpRequest) -> HttpResponse:
    models = (
        Model.objects.visible_to(request.user)
        .select_related("owner", "default_hardware")
        .order_by("-run_count", "owner__username", "name")[:60]
    )
    return render(
        request, "catalog/home.html", {"models": models, "public_url": settings.PUBLIC_URL}
    )
