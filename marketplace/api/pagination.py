"""Replicate's pages: DRF cursor pagination, 100 per page, newest first, absolute next/previous."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class CursorPage(CursorPagination):
    page_size = 100
    ordering = "-created_at"
    cursor_query_param = "cursor"


class PageByLatestVersion(CursorPage):
    ordering = "-latest_version_created_at"
