"""The MCP endpoint (``/mcp``): AI agents find and run models with API tokens, under the same
rules as ``/v1``. ``app`` is the ASGI side (authentication, the SDK's transport), ``server`` the
MCP server, ``tools`` and ``resources`` what it offers, ``results`` how answers look."""
