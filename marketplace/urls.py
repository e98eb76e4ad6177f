from django.contrib import admin
from django.urls import include, path

from marketplace.audit import views as audit
from marketplace.deployments import views as deployments
from marketplace.metrics import metrics_view
from marketplace.predictions import views as predictions

urlpatterns = [
    path("admin/django-rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("v1/", include("marketplace.api.urls")),
    path("registry/", include("marketplace.registry.urls")),
    path("ops/hosts/", deployments.hosts, name="ops-hosts"),
    path("ops/audit/", audit.staff_audit, name="ops-audit"),
    path("billing/earnings/", include("marketplace.earnings.urls")),
    path("billing/", include("marketplace.billing.urls")),
    path("files/<path:name>", predictions.serve_file, name="file"),
    path("metrics", metrics_view, name="metrics"),
    # The site: explore, model pages, playground, predictions, accounts (last: /<owner>/<name>).
    path("", include("marketplace.web.urls")),
]
