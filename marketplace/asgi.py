import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")

django_application = get_asgi_application()

# /mcp goes to the MCP server (marketplace/mcp/app.py), everything else to Django; imported once
# Django is set up, since it uses the ORM.
from marketplace.mcp.app import with_mcp  # noqa: E402

application = with_mcp(django_application)
