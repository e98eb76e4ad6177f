"""Why a create is refused. Raised by the one create path (``services.prediction_create``) and
the billing reservation before anything is stored, queued or billed; the API turns each into a
problem document (``api.errors``), the playground into messages beside its fields."""

from __future__ import annotations

from marketplace.catalog.schema import FieldError


class CreateRefused(Exception):
    """A create that cannot go ahead; nothing was written."""


class InputValidationError(CreateRefused):
    """The input (or a webhook, or a file it names) is not acceptable: 422, field by field."""

    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(e.description for e in errors))
        self.errors = errors


class InvalidParameter(CreateRefused):
    """A request parameter other than the input is malformed (``Cancel-After``, ``lifetime``): 400
    naming it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message


class DeploymentOffline(CreateRefused):
    """The deployment's ``max_instances`` is 0: it takes no predictions until updated (409)."""


class QueueUnavailable(CreateRefused):
    """Redis, which queues predictions, did not answer: 503 with ``Retry-After``. The prediction
    row was removed again, so nothing was kept, queued or billed."""

    retry_after = 5

    def __init__(self) -> None:
        super().__init__(
            "Predictions cannot be queued right now (the queue does not answer). "
            f"Nothing was created; try again in {self.retry_after} seconds."
        )


class DestinationRefused(CreateRefused):
    """A training's ``destination`` cannot take its version: 404 when the caller may not see it
    (or it names nothing), 403 when they see it but may not write it, 422 when malformed. The
    problem names the field ``destination``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class NotTrainable(CreateRefused):
    """The version's model has no trainer (no ``train:`` in its cog.yaml): 422."""
