"""The MCP server (the official SDK's low-level ``Server``): tools and resources for the caller
``app`` authenticated.

A tool call is admitted the way DRF admits a ``/v1`` request: the token's permission for the
call's method, then the rate limit, then the arguments against the tool's input schema (a 400
problem naming each bad field). Whatever the API would answer with a problem document becomes a
tool error (``isError``) carrying that document, in the API's words. Database work runs in
Django's thread (``sync_to_async``); waiting for a prediction is an await on its event stream.
"""

from __future__ import annotations

import logging
from typing import Any

import mcp_types as types
from asgiref.sync import sync_to_async
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaViolation
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from rest_framework import exceptions

from marketplace.api.authentication import check_token_permission
from marketplace.api.errors import Problem
from marketplace.api.throttles import ApiRateThrottle, CreateRateThrottle
from marketplace.mcp import resources, tools
from marketplace.mcp.results import internal_error, problem_body, tool_error
from marketplace.mcp.tools import TOOLS, Caller, Tool
from marketplace.predictions import events
from marketplace.predictions.models import Prediction

logger = logging.getLogger(__name__)

CALLER = "marketplace.mcp.caller"
INSTRUCTIONS = (
    "A model marketplace: search_models and get_model find a model and its input schema; "
    "run_model runs it and waits (create_prediction starts one without waiting, "
    "get_prediction follows it); upload_file stores a file to give as an input. Runs are "
    "billed to the account of your API token, within its spend cap."
)
_VALIDATORS = {name: Draft202012Validator(tool.input_schema) for name, tool in TOOLS.items()}


def caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
    request = ctx.request
    caller = request.scope.get(CALLER) if request is not None else None
    if not isinstance(caller, Caller):  # pragma: no cover - app.py authenticates every request
        raise MCPError(types.INVALID_REQUEST, "You did not pass a valid authentication token")
    return caller


def _field_of(error: SchemaViolation) -> tuple[str, str]:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = [p for p in error.validator_value if p not in (error.instance or {})]
        name = ".".join(filter(None, [path, missing[0] if missing else ""]))
        return name or "arguments", "required"
    if error.validator == "additionalProperties":
        return path or "arguments", error.message
    return path or "arguments", error.message


def admit(caller: Caller, tool: Tool, args: dict[str, Any]) -> None:
    """What DRF checks before a /v1 view runs, in its order."""
    check_token_permission(caller.token, tool.method)
    throttle = CreateRateThrottle() if tool.throttle == "create" else ApiRateThrottle()
    if not throttle.allow_user(caller.user):
        raise exceptions.Throttled(wait=throttle.wait())
    errors = sorted(_VALIDATORS[tool.name].iter_errors(args), key=lambda e: list(e.absolute_path))
    if errors:
        fields = [_field_of(e) for e in errors]
        raise Problem.for_fields(
            [{"type": "invalid", "field": f, "description": d} for f, d in fields],
            "Invalid request",
            400,
        )


def _failed(result: types.CallToolResult) -> types.CallToolResult:
    """run_model's answer: a prediction that failed or was canceled is a tool error."""
    body = result.structured_content
    if isinstance(body, dict) and body.get("status") in (
        Prediction.Status.FAILED,
        Prediction.Status.CANCELED,
    ):
        return result.model_copy(update={"is_error": True})
    return result


async def _run_model(caller: Caller, args: dict[str, Any]) -> types.CallToolResult:
    prediction = await sync_to_async(tools.create)(caller, args)
    await events.await_done(prediction.pk, args.get("wait", tools.WAIT["default"]))
    result = await sync_to_async(tools.prediction_answer)(caller, prediction.pk)
    return _failed(result)


async def list_tools(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[tool.as_mcp() for tool in TOOLS.values()])


async def call_tool(
    ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    caller = caller_of(ctx)
    tool = TOOLS.get(params.name)
    if tool is None:
        raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
    args = dict(params.arguments or {})
    try:
        await sync_to_async(admit)(caller, tool, args)
        if tool.name == tools.RUN_MODEL:
            return await _run_model(caller, args)
        return await sync_to_async(tool.run)(caller, args)
    except Exception as exc:
        body = problem_body(exc)
        if body is None:
            logger.exception("MCP tool %s failed", tool.name)
            return internal_error()
        return tool_error(body)


def _admit_read(caller: Caller) -> None:
    throttle = ApiRateThrottle()
    if not throttle.allow_user(caller.user):
        raise exceptions.Throttled(wait=throttle.wait())


def _protocol_error(exc: Exception) -> MCPError:
    body = problem_body(exc)
    if body is None:
        logger.exception("MCP resource request failed")
        return MCPError(types.INTERNAL_ERROR, "The server failed to handle this request.")
    return MCPError(types.INVALID_REQUEST, str(body.get("detail", "")), body)


async def list_resources(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListResourcesResult:
    caller = caller_of(ctx)
    cursor = params.cursor if params is not None else None
    try:
        await sync_to_async(_admit_read)(caller)
        return await sync_to_async(resources.list_models)(caller, cursor)
    except ValueError as exc:
        raise MCPError(types.INVALID_PARAMS, "Invalid cursor") from exc
    except Exception as exc:
        raise _protocol_error(exc) from exc


async def list_resource_templates(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListResourceTemplatesResult:
    return resources.templates()


async def read_resource(
    ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
) -> types.ReadResourceResult:
    caller = caller_of(ctx)
    try:
        await sync_to_async(_admit_read)(caller)
        result = await sync_to_async(resources.read_model)(caller, str(params.uri))
    except Exception as exc:
        raise _protocol_error(exc) from exc
    if result is None:
        raise MCPError(
            resources.RESOURCE_NOT_FOUND,
            "The requested resource could not be found.",
            {"uri": str(params.uri)},
        )
    return result


def build() -> Server[Any]:
    from django.conf import settings

    return Server(
        "marketplace",
        version="1",
        title="Model marketplace",
        instructions=INSTRUCTIONS,
        website_url=settings.PUBLIC_URL,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_resource_templates,
        on_read_resource=read_resource,
    )
