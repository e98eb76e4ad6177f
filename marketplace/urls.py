from django.contrib import admin
from django.urls import include, path

from marketplace.catalog import views as catalog
from marketplace.predictions import views as predictions

urlpatterns = [
    path("", catalog.home, name="home"),
    path("admin/django-rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("v1/", include("marketplace.api.urls")),
    path("billing/", include("marketplace.billing.urls")),
    path("files/<path:name>", predictions.serve_file, name="file"),
]
