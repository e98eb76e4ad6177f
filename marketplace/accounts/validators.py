from __future__ import annotations

from django.core.validators import RegexValidator

# Owner and model names end up in URLs and in registry repository names (`owner/name`), so they
# follow the registry's path-component grammar: lowercase alphanumerics separated by . _ or -.
NAMESPACE_RE = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*\Z"

namespace_validator = RegexValidator(
    NAMESPACE_RE,
    "Use lowercase letters, digits, and single '.', '_' or '-' between them.",
    code="invalid_name",
)

# First path segments the site uses itself: an account (user or organisation) with one of these
# names would be unreachable at /<name>.
RESERVED_NAMES = frozenset(
    {
        "account",
        "admin",
        "api",
        "avatars",
        "billing",
        "collections",
        "deployments",
        "files",
        "mcp",
        "metrics",
        "new",
        "ops",
        "p",
        "registry",
        "search",
        "static",
        "v1",
    }
)
