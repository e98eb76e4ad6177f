"""The agent's HTTP endpoint for its Cog servers: prediction webhooks and output file uploads.

Cog servers run with ``--upload-url http://<agent>/upload/<instance token>/`` and send webhooks to
``http://<agent>/hooks/<prediction id>`` with ``Authorization: Bearer <instance token>``
(``WEBHOOK_AUTH_TOKEN``). Webhooks are handed to the runner waiting for that prediction; files go
straight to the configured storage and Cog gets their public URL back in ``Location``.
"""

from __future__ import annotations

import hmac
import json
import logging
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from typing import IO, Any, cast
from urllib.parse import unquote

from django.conf import settings

from marketplace.logcontext import prediction_context
from workers.outputs import store_output_stream

logger = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 64 * 1024 * 1024


class Mailbox:
    """Where webhooks for one running prediction land."""

    def __init__(self, prediction_id: str, token: str):
        self.prediction_id = prediction_id
        self.token = token
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue()


class HookServer:
    def __init__(self, host: str, port: int):
        self._mailboxes: dict[str, Mailbox] = {}
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="hookserver", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_token(self, token: str) -> None:
        with self._lock:
            self._tokens.add(token)

    def remove_token(self, token: str) -> None:
        with self._lock:
            self._tokens.discard(token)

    def expect(self, prediction_id: str, token: str) -> Mailbox:
        mailbox = Mailbox(prediction_id, token)
        with self._lock:
            self._mailboxes[prediction_id] = mailbox
        return mailbox

    def release(self, prediction_id: str) -> None:
        with self._lock:
            self._mailboxes.pop(prediction_id, None)

    def mailbox(self, prediction_id: str) -> Mailbox | None:
        with self._lock:
            return self._mailboxes.get(prediction_id)

    def known_token(self, token: str) -> bool:
        with self._lock:
            return any(hmac.compare_digest(token, t) for t in self._tokens)


def _handler_for(server: HookServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("hookserver: " + format, *args)

        def _reply(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            if status >= 400:
                # The request body may be unread: don't let it be parsed as the next request.
                self.close_connection = True
                self.send_header("Connection", "close")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def _bearer(self) -> str:
            keyword, _, token = self.headers.get("Authorization", "").partition(" ")
            return token.strip() if keyword.lower() == "bearer" else ""

        def do_POST(self) -> None:
            parts = PurePosixPath(self.path.split("?", 1)[0]).parts
            length = int(self.headers.get("Content-Length") or 0)
            if len(parts) != 3 or parts[1] != "hooks" or length > MAX_WEBHOOK_BYTES:
                self.rfile.read(min(length, MAX_WEBHOOK_BYTES))
                return self._reply(404)
            body = self.rfile.read(length)
            with prediction_context(parts[2]):
                self._webhook(parts[2], body)

        def _webhook(self, prediction_id: str, body: bytes) -> None:
            mailbox = server.mailbox(prediction_id)
            if mailbox is None:
                # Late or duplicate webhooks after the prediction ended: accepted and dropped,
                # so Cog does not retry them.
                return self._reply(200)
            if not hmac.compare_digest(self._bearer(), mailbox.token):
                return self._reply(403)
            try:
                payload = json.loads(body)
            except ValueError:
                return self._reply(400)
            mailbox.queue.put(payload)
            self._reply(200)

        def do_PUT(self) -> None:
            parts = PurePosixPath(self.path.split("?", 1)[0]).parts
            if len(parts) != 4 or parts[1] != "upload" or not server.known_token(parts[2]):
                return self._reply(404)
            prediction_id = self.headers.get("X-Prediction-ID", "")
            mailbox = server.mailbox(prediction_id)
            if mailbox is None or not hmac.compare_digest(mailbox.token, parts[2]):
                return self._reply(403)
            if not self.headers.get("Content-Length", "").isdigit():
                return self._reply(411)  # Cog's uploaders always send a length
            length = int(self.headers["Content-Length"])
            if length > settings.MAX_OUTPUT_FILE_BYTES:
                return self._reply(413)
            with prediction_context(prediction_id):
                url = store_output_stream(
                    prediction_id,
                    unquote(parts[3]),
                    cast(IO[bytes], self.rfile),
                    length,
                    self.headers.get("Content-Type") or "",
                )
                logger.info("stored output file %s (%d bytes)", unquote(parts[3]), length)
            self._reply(201, headers={"Location": url})

    return Handler
