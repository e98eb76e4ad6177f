"""The site's Content-Security-Policy (django-csp), the second wall behind sanitising; the
policy itself is ``CONTENT_SECURITY_POLICY`` in settings.

Scripts run only with the response's nonce (``nonce="{{ request.csp_nonce }}"`` on our own
``<script>`` tags), so neither inline script nor a script loaded from our own origin — where
stored files are served too — runs unless the page put it there. Styles come from our static
files only; images and media may come from anywhere (model outputs and inputs are URLs on any
host). Pages whose third-party code needs more get it by path prefix, and only there.
"""

from __future__ import annotations

from typing import Any

from csp.constants import NONE, SELF, UNSAFE_INLINE
from csp.middleware import CSPMiddleware, PolicyParts
from django.http import HttpRequest, HttpResponseBase

# Third-party pages that cannot run under the site's policy, and what they get instead.
RELAXED: list[tuple[str, dict[str, Any]]] = [
    # django-rq's admin pages (staff only) use inline scripts and styles.
    (
        "/admin/django-rq/",
        {"script-src": [SELF, UNSAFE_INLINE], "style-src": [SELF, UNSAFE_INLINE]},
    ),
    # Django's admin loads its static scripts without a nonce.
    ("/admin/", {"script-src": [SELF]}),
    # Redoc (our API docs) injects its styles and renders in a worker.
    ("/v1/docs", {"style-src": [SELF, UNSAFE_INLINE], "worker-src": [SELF, "blob:"]}),
]


class SiteCSPMiddleware(CSPMiddleware):
    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        replace = dict(parts.replace or {})
        if parts.nonce is None:
            # No script on this page: say so, rather than an empty source list.
            replace.setdefault("script-src", [NONE])
        for prefix, relaxed in RELAXED:
            if request.path_info.startswith(prefix):
                replace.update(relaxed)
                break
        parts.replace = replace
        return parts
