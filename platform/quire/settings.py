"""Django settings for Quire, read only from the environment (see docs/ARCHITECTURE.md).

Defaults are safe for production (DEBUG off, HTTPS-only cookies, HSTS) except where a dev or test
run is detected: `DJANGO_DEBUG=1`, or pytest (which sets `PYTEST_VERSION`), gets a throwaway secret
key and plain-HTTP cookies. With `DJANGO_DEBUG=0` and a real `DJANGO_SECRET_KEY`,
`manage.py check --deploy` is clean.
"""

import os
import urllib.parse
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[2]  # the repository root
VAR_DIR = BASE_DIR / "var"


def env_str(name: str, default: str = "") -> str:
    """Return env var `name`, or `default` when unset or empty."""
    return os.environ.get(name) or default


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean env var: 1/true/yes/on (case-insensitive) is True, anything else set is False."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    """Read an integer env var; raise ImproperlyConfigured naming the variable when it is not one."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """Read an env var that must be one of `choices`; raise ImproperlyConfigured naming the
    variable and the choices otherwise."""
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be {' or '.join(map(repr, choices))}, got {value!r}")
    return value


def env_list(name: str, default: str) -> list[str]:
    """Read a comma-separated env var into a list of non-empty, stripped items."""
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
TESTING = "PYTEST_VERSION" in os.environ

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-quire-never-use-in-production-0123456789"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "quire.documents",
    "quire.jobs",
    "quire.registry",
    "quire.api",
    "quire.web",
    # Embedded mode (`manage.py transcribe`): lives in workers/, quire itself never imports it.
    "workers.embedded",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "quire.api.errors.ApiJsonErrorsMiddleware",  # JSON 404/413 on /api/ paths, also under DEBUG
]

ROOT_URLCONF = "quire.urls"
WSGI_APPLICATION = "quire.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database: SQLite by default, PostgreSQL through DATABASE_URL -----------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DJANGO_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # Workers and the web server write concurrently: wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Storage: S3 (django-storages) or the local filesystem ----------------------------------
QUIRE_STORAGE = env_str("QUIRE_STORAGE", "filesystem")
MEDIA_ROOT = env_str("QUIRE_MEDIA_ROOT", str(VAR_DIR / "media"))
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
_STATIC_BACKEND = {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"}

if QUIRE_STORAGE == "s3":
    from botocore.config import Config as _BotoConfig

    STORAGES = {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME"),
                "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
                "region_name": env_str("AWS_S3_REGION_NAME", "us-east-1"),
                "access_key": env_str("AWS_ACCESS_KEY_ID") or None,
                "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None,
                "addressing_style": "path",
                "signature_version": "s3v4",
                "file_overwrite": True,
                "default_acl": None,
                "querystring_auth": True,
                # Fail fast when the S3 server is down: the API answers 503, the worker retries.
                "client_config": _BotoConfig(
                    connect_timeout=env_int("QUIRE_S3_CONNECT_TIMEOUT", 5),
                    read_timeout=env_int("QUIRE_S3_READ_TIMEOUT", 30),
                    retries={"max_attempts": 2, "mode": "standard"},
                    s3={"addressing_style": "path"},
                    signature_version="s3v4",
                ),
            },
        },
        "staticfiles": _STATIC_BACKEND,
    }
elif QUIRE_STORAGE == "filesystem":
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": _STATIC_BACKEND,
    }
else:
    raise ImproperlyConfigured(f"QUIRE_STORAGE must be 's3' or 'filesystem', got {QUIRE_STORAGE!r}")

# --- Upload limits (ingest) -------------------------------------------------------------------
QUIRE_MAX_PIXELS = env_int("QUIRE_MAX_PIXELS", 60_000_000)
QUIRE_MAX_UPLOAD_BYTES = env_int("QUIRE_MAX_UPLOAD_BYTES", 104_857_600)
QUIRE_PDF_DPI = env_int("QUIRE_PDF_DPI", 200)
QUIRE_MAX_PAGES_PER_UPLOAD = env_int("QUIRE_MAX_PAGES_PER_UPLOAD", 100)  # TIFF frames / PDF pages per file (413)
# A base64 JSON body is 4/3 of the file, plus room for the JSON around it.
DATA_UPLOAD_MAX_MEMORY_SIZE = QUIRE_MAX_UPLOAD_BYTES * 4 // 3 + 1_048_576

# --- Jobs and queues --------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", CELERY_BROKER_URL)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
QUIRE_DEVICE = env_str("QUIRE_DEVICE", "cpu")
# "lm": prefix beam search fused with the shipped character language model (more accurate, about
# 3x slower to decode); "greedy": best-path decoding (the recognizer's own figures)
QUIRE_DECODING = env_choice("QUIRE_DECODING", "lm", ("lm", "greedy"))
# lines the line-type classifier takes for printed (letterheads, typed text): "keep" reads them
# like the rest and marks them printed; "drop" sets them aside, not transcribed
QUIRE_PRINTED_LINES = env_choice("QUIRE_PRINTED_LINES", "keep", ("keep", "drop"))
# how each detected line is cut for the recognizer: "both" reads it cut along its polygon and along
# the band around its baseline and keeps the more confident reading (more accurate, about a third
# more time per page); "polygon" reads the polygon's cut only
QUIRE_LINE_CUTS = env_choice("QUIRE_LINE_CUTS", "both", ("both", "polygon"))
# also read a page's handwritten lines sheared by the slant they read best at together (one hand
# per page; dev Stanford greedy CER 26.2 -> 25.0 %, about twice the reading time); off: as cut only
QUIRE_PAGE_SLANT = env_bool("QUIRE_PAGE_SLANT", True)
# torch CPU threads per worker process: 1, with one worker per core (more threads spin during LM
# decoding and slow the other workers down, see docs/ARCHITECTURE.md)
QUIRE_TORCH_THREADS = env_int("QUIRE_TORCH_THREADS", 1)
if QUIRE_TORCH_THREADS < 1:
    raise ImproperlyConfigured(f"QUIRE_TORCH_THREADS must be at least 1, got {QUIRE_TORCH_THREADS}")
QUIRE_JOB_STUCK_AFTER_S = env_int("QUIRE_JOB_STUCK_AFTER_S", 1800)  # sweep re-queues after this
QUIRE_JOB_MAX_ATTEMPTS = env_int("QUIRE_JOB_MAX_ATTEMPTS", 3)
QUIRE_TRANSCRIBE_MAX_WAIT_S = 60
QUIRE_MAX_LINE_CHARS = env_int("QUIRE_MAX_LINE_CHARS", 2000)  # text of one line (PATCH /lines/{id}/)

# --- Cache: throttle counts (API and sign-in form) shared by every web process ----------------


def cache_url() -> str:
    """The cache's URL: QUIRE_CACHE_URL, else the Redis of CELERY_BROKER_URL (when set in the
    environment) with another db number (broker db + 1, wrapping at 16), else "" (local memory:
    bare unit tests only; each process then counts for itself)."""
    if url := env_str("QUIRE_CACHE_URL"):
        return url
    broker = urllib.parse.urlsplit(env_str("CELERY_BROKER_URL"))
    if broker.scheme not in ("redis", "rediss"):
        return ""
    try:
        db = int(broker.path.strip("/") or 0)
    except ValueError:
        raise ImproperlyConfigured(f"CELERY_BROKER_URL has a db number that is not one: {broker.path!r}") from None
    return urllib.parse.urlunsplit(broker._replace(path=f"/{(db + 1) % 16}"))


QUIRE_CACHE_URL = cache_url()
if QUIRE_CACHE_URL and not QUIRE_CACHE_URL.startswith("locmem://"):
    # Django's RedisCache, failing open when Redis is down (quire.cache)
    CACHES = {"default": {"BACKEND": "quire.cache.FailOpenRedisCache", "LOCATION": QUIRE_CACHE_URL,
                          "KEY_PREFIX": "quire"}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "quire"}}
# Failed sign-ins on the web form per minute, per client address and per username (then 429).
QUIRE_LOGIN_FAILURES_PER_MIN = env_int("QUIRE_LOGIN_FAILURES_PER_MIN", 10)
# Reverse proxies in front of Django that append to X-Forwarded-For: the client address of the
# throttles is the N-th entry from the right (quire.api.throttling.client_address; DRF's NUM_PROXIES).
BEHIND_TLS_PROXY = env_bool("DJANGO_BEHIND_TLS_PROXY", False)
QUIRE_TRUSTED_PROXY_COUNT = env_int("QUIRE_TRUSTED_PROXY_COUNT", 1 if BEHIND_TLS_PROXY else 0)
if QUIRE_TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured(f"QUIRE_TRUSTED_PROXY_COUNT must be 0 or more, got {QUIRE_TRUSTED_PROXY_COUNT}")

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies must be objects (a list/string/null body gave 500s): quire.api.parsers
    "DEFAULT_PARSER_CLASSES": ["quire.api.parsers.ObjectJSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_PAGINATION_CLASS": "quire.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "quire.api.errors.exception_handler",
    "URL_FORMAT_OVERRIDE": None,  # `?format=` selects an export format, not a DRF renderer
    "DEFAULT_THROTTLE_CLASSES": [  # DRF's, counting anonymous requests by client address behind proxies
        "quire.api.throttling.AnonRateThrottle",
        "quire.api.throttling.UserRateThrottle",
        "quire.api.throttling.ScopedRateThrottle",
    ],
    "NUM_PROXIES": QUIRE_TRUSTED_PROXY_COUNT,
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("QUIRE_THROTTLE_ANON", "60/min"),
        "user": env_str("QUIRE_THROTTLE_USER", "1200/min"),
        "uploads": env_str("QUIRE_THROTTLE_UPLOADS", "600/min"),
        "auth": env_str("QUIRE_THROTTLE_AUTH", "10/min"),  # token requests per client address: password guessing
        "search": env_str("QUIRE_THROTTLE_SEARCH", "120/min"),  # each search scans the user's lines
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Quire API",
    "DESCRIPTION": "Upload handwritten pages, follow transcription jobs, export PAGE XML / ALTO.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # model versions and jobs both have a `state` field with different choices
    "ENUM_NAME_OVERRIDES": {"ModelVersionStateEnum": "quire.registry.models.MODEL_STATES",
                            "JobStateEnum": "quire.jobs.models.JobState"},
}

# --- Security (`manage.py check --deploy`) ----------------------------------------------------
_HTTPS_DEFAULT = not (DEBUG or TESTING)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", _HTTPS_DEFAULT)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # probed over plain HTTP inside the network (docker-compose)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", _HTTPS_DEFAULT)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 if _HTTPS_DEFAULT else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("QUIRE_LOG_LEVEL", "INFO")},
    # Django's default config gives "django" its own console handler (DEBUG only) and mail_admins;
    # here it only propagates to the root handler, so each request error is logged once
    "loggers": {"django": {"handlers": [], "level": env_str("QUIRE_LOG_LEVEL", "INFO"), "propagate": True}},
}
