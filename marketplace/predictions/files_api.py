"""``/v1/files``: upload (both clients' multipart shapes), list, get, delete, download."""

from __future__ import annotations

import hashlib
import mimetypes
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile as DjangoUpload
from django.db import transaction
from django.http import FileResponse, HttpRequest
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace import jsonsafe, storage
from marketplace.accounts.models import Account, User, signed_in
from marketplace.api import openapi as o
from marketplace.api.authentication import acting_account
from marketplace.api.errors import Problem
from marketplace.api.pagination import CursorPage
from marketplace.files.models import StoredFile
from marketplace.predictions.uploads import UploadedFile, default_expiry, signature_valid

NOT_FOUND = "File not found"


def file_too_large() -> Problem:
    limit_mb = settings.FILES_MAX_BYTES / 1024**2
    return Problem(413, f"Files must be less than {limit_mb:g}MB in size", "File too large")


class LimitedMultiPartParser(MultiPartParser):
    """Refuses an oversized body with 413 before reading it."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        request: HttpRequest = (parser_context or {})["request"]
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.FILES_MAX_BYTES + 64 * 1024:  # room for the multipart envelope
            raise file_too_large()
        return super().parse(stream, media_type, parser_context)


def _metadata(request: Request) -> dict[str, Any]:
    """Python sends ``metadata`` as a form field; JS as a file part named ``blob``."""
    data: Any = request.data
    raw: Any = data.get("metadata")
    if isinstance(raw, DjangoUpload):
        raw = raw.read().decode("utf-8", "replace")
    if raw in (None, ""):
        return {}
    value, refusal = jsonsafe.loads(raw, "metadata")
    if refusal is not None:
        field, description = refusal.field, refusal.description
        raise Problem(
            400,
            f"- {field}: {description}\n",
            "Invalid metadata",
            invalid_fields=[{"type": "invalid", "field": field, "description": description}],
        )
    if not isinstance(value, dict):
        raise Problem(400, "metadata must be a JSON object", "Invalid metadata")
    return value


def _file_for(request: Request, file_id: str) -> UploadedFile:
    found = UploadedFile.objects.of(signed_in(request.user).account).filter(pk=file_id).first()
    if found is None:
        raise Problem(404, NOT_FOUND)
    return found


def file_create(
    *,
    account: Account,
    created_by: User,
    content: File[bytes],
    name: str,
    content_type: str = "",
    metadata: dict[str, Any] | None = None,
) -> UploadedFile:
    """Store ``content`` as one of ``account``'s ``/v1/files`` (the API's uploads and the MCP
    ``upload_file`` tool). The caller checked its size and ``name``'s length."""
    content_type = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    for chunk in content.chunks():
        sha256.update(chunk)
        md5.update(chunk)
    content.seek(0)
    uploaded = UploadedFile(
        account=account,
        created_by=created_by,
        name=name,
        content_type=content_type[:255],
        size=content.size or 0,
        sha256=sha256.hexdigest(),
        md5=md5.hexdigest(),
        metadata=metadata or {},
        expires_at=default_expiry(),
    )
    uploaded.content.save(name.rsplit("/", 1)[-1] or "file", content, save=False)
    with transaction.atomic():
        uploaded.save()
        StoredFile.record(str(uploaded.content.name), StoredFile.Kind.FILE, uploaded.account_id)
    return uploaded


class FileCollectionApi(APIView):
    parser_classes = [LimitedMultiPartParser]

    @extend_schema(operation_id="files.list", responses=o.FilePage, parameters=[o.CURSOR])
    def get(self, request: Request) -> Response:
        paginator = CursorPage()
        page = paginator.paginate_queryset(
            UploadedFile.objects.of(signed_in(request.user).account), request, view=self
        )
        return paginator.get_paginated_response([f.to_api() for f in page or []])

    @extend_schema(
        operation_id="files.create",
        request={"multipart/form-data": o.FileIn},
        responses={201: o.FileOut},
    )
    def post(self, request: Request) -> Response:
        content = request.FILES.get("content")
        if content is None:
            raise Problem.for_fields(
                [
                    {
                        "type": "required",
                        "field": "content",
                        "description": "a file part named 'content' is required",
                    }
                ],
                "Invalid request",
                400,
            )
        if content.size is not None and content.size > settings.FILES_MAX_BYTES:
            raise file_too_large()
        form: Any = request.data
        name = str(form.get("filename") or content.name or "file")
        if len(name.encode()) > 255:
            raise Problem(400, "- filename: must be at most 255 bytes\n", "Invalid request")
        declared = str(
            form.get("type")
            or (content.content_type if content.content_type != "application/octet-stream" else "")
        )
        metadata = _metadata(request)
        uploaded = file_create(
            account=acting_account(request, write=True),
            created_by=signed_in(request.user),
            content=content,
            name=name,
            content_type=declared,
            metadata=metadata,
        )
        body = uploaded.to_api()
        return Response(body, status=201, headers={"Location": body["urls"]["get"]})


class FileDetailApi(APIView):
    @extend_schema(operation_id="files.get", responses=o.FileOut)
    def get(self, request: Request, file_id: str) -> Response:
        return Response(_file_for(request, file_id).to_api())

    @extend_schema(operation_id="files.delete", responses={204: o.NO_CONTENT})
    def delete(self, request: Request, file_id: str) -> Response:
        found = _file_for(request, file_id)
        acting_account(request, write=True)
        found.delete_content()
        found.delete()
        return Response(status=204)


class FileDownloadApi(APIView):
    """The content: for the owner's token, or for anyone holding a signed, unexpired URL (what
    model servers get in place of file URLs in their input)."""

    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="files.download",
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter("owner", str),
            OpenApiParameter("expiry", int),
            OpenApiParameter("signature", str),
        ],
    )
    def get(self, request: Request, file_id: str, name: str = "") -> FileResponse:
        params = request.query_params
        files = UploadedFile.objects.live().select_related("account").filter(pk=file_id)
        found = files.first()
        user = request.user if isinstance(request.user, User) else None
        allowed = found is not None and (
            (user is not None and found.account.is_member(user))
            or (
                signature_valid(
                    params.get("owner", ""),
                    file_id,
                    params.get("expiry", ""),
                    params.get("signature", ""),
                )
                and params.get("owner", "").lower() == found.account.username.lower()
            )
        )
        if not allowed or found is None:
            raise Problem(404, NOT_FOUND)
        try:
            handle = storage.open_stream(str(found.content.name))
        except FileNotFoundError as exc:
            raise Problem(404, NOT_FOUND) from exc
        response = FileResponse(
            handle,
            content_type=found.content_type or "application/octet-stream",
            as_attachment=True,
            filename=found.name,
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, no-store"
        return response


@extend_schema(exclude=True)
class FileDownloadNamedApi(FileDownloadApi):
    """The same download with the file's name as the last path segment (what model servers
    get, so that the downloaded file keeps its name and extension)."""
