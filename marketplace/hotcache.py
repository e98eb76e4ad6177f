"""Per-process caches for the hot path: API tokens, the versions public models run, the version
answer the official client reads before a run, and the catalog objects a prediction shows and is
charged by (its version, model, owner and hardware).

A prediction create used to look up its token and its version in the database on every request.
Both change rarely, so each web process keeps what it looked up for at most
``HOT_CACHE_SECONDS`` (1 s): a revoked or expired token, a hidden version, a model made private
or a changed price takes effect on every web worker within that time. Changes made by this
process take effect at once: the signals below clear its caches. Private models are never
cached (who may see them depends on the caller), and callers get copies, so nothing one request
does to an object reaches another.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db.models.signals import post_delete, post_save

K = TypeVar("K")
V = TypeVar("V")

_MISSING = object()


class TTLCache(Generic[K, V]):
    """A small thread-safe map whose entries live at most ``HOT_CACHE_SECONDS``."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, load: Callable[[], V]) -> V:
        ttl = float(settings.HOT_CACHE_SECONDS)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
        value = load()
        if ttl > 0:
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_tokens: TTLCache[str, Any] = TTLCache()
_versions: TTLCache[tuple[str, ...], Any] = TTLCache()
_bodies: TTLCache[tuple[str, ...], Any] = TTLCache(max_entries=1_000)  # schemas are large
_shown: TTLCache[tuple[str, Any], Any] = TTLCache()


def authenticate(raw_key: str) -> Any:
    """``ApiToken.objects.authenticate`` through the cache: a copy of the token, its user (with
    ``api_token`` set) and its accounts; None for a key that authenticates as nobody."""
    from marketplace.accounts.models import ApiToken

    digest = hashlib.sha256(raw_key.encode()).hexdigest()
    cached = _tokens.get(digest, lambda: ApiToken.objects.authenticate(raw_key))
    if cached is None:
        return None
    cached.touch()  # at most once a minute, remembered on the cached object
    token = copy.copy(cached)
    token.user = copy.copy(cached.user)
    token.user.api_token = token
    return token


def public_version(*key: str, load: Callable[[], Any]) -> Any:
    """The version ``load`` finds for ``key`` (a reference, or owner and name), when its model is
    public; otherwise None, and the caller asks the database with the caller's roles."""

    def public_only() -> Any:
        version = load()
        if version is None or version.model.visibility != "public":
            return _MISSING
        return version

    version = _versions.get(tuple(key), public_only)
    return None if version is _MISSING else copy.copy(version)


def public_body(*key: str, load: Callable[[], bytes | None]) -> bytes | None:
    """A rendered API answer that is the same for every caller (``load`` returns None unless
    the model it shows is public); None when it is not, and the caller answers from the database
    with the caller's roles. The official client reads a version before every
    ``run("owner/name:id")``: this answer is what it reads."""
    body = _bodies.get(tuple(key), lambda: _MISSING if (loaded := load()) is None else loaded)
    return None if body is _MISSING else body  # type: ignore[return-value]


def attach_catalog(prediction: Any) -> None:
    """Attach the version (with its model and owner) and the hardware a prediction's API object
    shows and its charge is priced by, from this process's cache, instead of joining four tables
    into every read of a prediction (a polled ``GET /v1/predictions/{id}``, the runner's end).
    Who may read the prediction was decided by its own row (its account); a changed price is
    charged within ``HOT_CACHE_SECONDS``, as it is quoted."""
    from marketplace.catalog.models import Hardware, Version

    version = _shown.get(
        ("version", prediction.version_id),
        lambda: (
            Version.objects.select_related("model__owner")
            .defer("openapi_schema")
            .get(pk=prediction.version_id)
        ),
    )
    prediction.version = copy.copy(version)
    if version.model_id == prediction.model_id:
        prediction.model = version.model
    if prediction.hardware_id is not None:
        prediction.hardware = _shown.get(
            ("hardware", prediction.hardware_id),
            lambda: Hardware.objects.get(pk=prediction.hardware_id),
        )


def clear(**kwargs: Any) -> None:
    _tokens.clear()
    _versions.clear()
    _bodies.clear()
    _shown.clear()


def connect_signals() -> None:
    """Clear this process's caches whenever it changes what they hold (``ApiConfig.ready``)."""
    from marketplace.accounts.models import Account, ApiToken, Membership, User
    from marketplace.catalog.models import Hardware, Model, Version

    for model in (ApiToken, User, Account, Membership, Model, Version, Hardware):
        post_save.connect(clear, sender=model, dispatch_uid=f"hotcache-save-{model.__name__}")
        post_delete.connect(clear, sender=model, dispatch_uid=f"hotcache-del-{model.__name__}")
