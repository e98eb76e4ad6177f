"""HTTP client for the Cog container API (legacy FastAPI servers and coglet alike)."""

from __future__ import annotations

from typing import Any

import httpx

HEALTH_STATUSES = ("STARTING", "READY", "BUSY", "SETUP_FAILED", "DEFUNCT", "UNHEALTHY", "UNKNOWN")
WEBHOOK_EVENTS = ["start", "output", "logs", "completed"]


class CogError(Exception):
    """Cog answered, but not with what we asked for."""

    def __init__(self, message: str, *, status_code: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status_code = status_code
        self.retryable = retryable


def _describe_422(body: Any) -> str:
    # Both generations answer {"detail": [{"loc": ["body", "input", "<field>"], "msg": "…"}]}.
    try:
        parts = []
        for item in body["detail"]:
            loc = [str(p) for p in item.get("loc", []) if p not in ("body", "input")]
            parts.append(f"{'.'.join(loc) or 'input'}: {item.get('msg')}")
        return "; ".join(parts)
    except (KeyError, TypeError):
        return str(body)


def _collection(training: bool) -> str:
    return "trainings" if training else "predictions"


class CogClient:
    def __init__(self, base_url: str, *, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def health(self, timeout: float = 2.0) -> dict[str, Any]:
        """``GET /health-check``. Always 200, even while setup runs: the body's status decides."""
        response = self._http.get("/health-check", timeout=timeout)
        response.raise_for_status()
        return response.json()

    def openapi(self) -> dict[str, Any]:
        response = self._http.get("/openapi.json")
        response.raise_for_status()
        return response.json()

    def predict_async(
        self,
        prediction_id: str,
        input: dict[str, Any],
        *,
        webhook: str,
        events_filter: list[str] | None = None,
        training: bool = False,
    ) -> None:
        """Start a prediction that reports through webhooks (``Prefer: respond-async``).

        PUT with our id makes retries idempotent while it runs: Cog won't start it twice.
        ``training``: a training, on a train-mode server (``PUT /trainings/{id}``).
        """
        body = {
            "id": prediction_id,
            "input": input,
            "webhook": webhook,
            "webhook_events_filter": events_filter or WEBHOOK_EVENTS,
        }
        self._put(prediction_id, body, training=training, headers={"Prefer": "respond-async"})

    def predict_inline(self, prediction_id: str, input: dict[str, Any]) -> dict[str, Any]:
        """Run a prediction synchronously and return Cog's final object (``id``, ``status``,
        ``output``, ``logs``, ``error``, ``metrics``). No webhook: coglet spends about 4 ms
        setting one up per prediction. The answer may take as long as the model does, so the
        read has no timeout; a cancel (``POST …/cancel``) still reaches it by id."""
        body = {"id": prediction_id, "input": input}
        response = self._put(
            prediction_id, body, timeout=httpx.Timeout(self._http.timeout.connect, read=None)
        )
        answer = response.json()
        if not isinstance(answer, dict) or "status" not in answer:
            raise CogError(f"The model server answered without a status: {answer!r}")
        return answer

    def _put(
        self,
        prediction_id: str,
        body: dict[str, Any],
        *,
        training: bool = False,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        response = self._http.put(
            f"/{_collection(training)}/{prediction_id}",
            json=body,
            headers=headers,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        if response.status_code in (200, 201, 202):
            return response
        try:
            detail: Any = response.json()
        except ValueError:
            detail = response.text
        if response.status_code == 422:
            raise CogError(_describe_422(detail), status_code=422)
        # 409: all slots busy; 503: setup not finished. Both pass; the prediction can wait.
        raise CogError(
            f"The model server answered {response.status_code}: {detail}",
            status_code=response.status_code,
            retryable=response.status_code in (409, 503),
        )

    def cancel(self, prediction_id: str, *, training: bool = False) -> bool:
        """True if Cog knew the prediction (404 means it had already finished)."""
        response = self._http.post(f"/{_collection(training)}/{prediction_id}/cancel", timeout=5.0)
        return response.status_code == 200

    def shutdown(self) -> None:
        self._http.post("/shutdown", timeout=2.0)
