"""Models as MCP resources: every public model and every model of the caller's account.

A model's resource (``model://owner/name``) reads as two contents: its README (Markdown) and a
JSON document of its latest version's input and output schema, exactly as the model declares
them, with its price (the ``get_model`` tool's document). Listing walks the models the caller
may see in pages, ordered by id; the cursor is the last id of the previous page. A model the
caller may not see reads as "not found", like every other outsider's view of a private thing.
"""

from __future__ import annotations

import json
import re

import mcp_types as types

from marketplace.catalog.models import Model, Version
from marketplace.mcp.tools import Caller, model_document

SCHEME = "model://"
PAGE = 100
# -32002 is MCP's "resource not found".
RESOURCE_NOT_FOUND = -32002
_URI = re.compile(r"^model://([^/\s]+)/([^/\s?#]+)$")


def uri_of(model: Model) -> str:
    return f"{SCHEME}{model.full_name}"


def list_models(caller: Caller, cursor: str | None) -> types.ListResourcesResult:
    models = Model.objects.visible_to(caller.user).select_related("owner").order_by("pk")
    if cursor:
        if not cursor.isdigit():
            raise ValueError("invalid cursor")
        models = models.filter(pk__gt=int(cursor))
    page = list(models[: PAGE + 1])
    more = len(page) > PAGE
    page = page[:PAGE]
    return types.ListResourcesResult(
        resources=[
            types.Resource(
                uri=uri_of(m),
                name=m.full_name,
                title=m.full_name,
                description=m.description or None,
                mime_type="text/markdown",
            )
            for m in page
        ],
        next_cursor=str(page[-1].pk) if more and page else None,
    )


def templates() -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(
        resource_templates=[
            types.ResourceTemplate(
                uri_template="model://{owner}/{name}",
                name="model",
                title="A model",
                description="A model's README, and the input and output schema of its latest "
                "version.",
                mime_type="text/markdown",
            )
        ]
    )


def read_model(caller: Caller, uri: str) -> types.ReadResourceResult | None:
    """The model's README and schema document; None when the caller may see no such model."""
    match = _URI.match(uri)
    if match is None:
        return None
    owner, name = match.groups()
    model = Model.objects.visible_to(caller.user).select_related("owner").named(owner, name)
    if model is None:
        return None
    versions = Version.objects.select_related("model__owner", "model__default_hardware")
    version = versions.latest_of(model)
    document = model_document(model, version)
    readme = document.pop("readme") or f"# {model.full_name}\n\n{model.description or ''}\n"
    return types.ReadResourceResult(
        contents=[
            types.TextResourceContents(uri=uri, mime_type="text/markdown", text=readme),
            types.TextResourceContents(
                uri=uri,
                mime_type="application/json",
                text=json.dumps(document, indent=2, ensure_ascii=False, default=str),
            ),
        ]
    )
