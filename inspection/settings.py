"""Settings for Rustwatch.

Everything comes from environment variables with defaults for the embedded
setup (one machine, SQLite in WAL mode, Celery over the filesystem broker,
everything under ``var/``). Production sets DATABASE_URL (PostgreSQL) and
CELERY_BROKER_URL (Redis); see docker-compose.yml.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("RUSTWATCH_VAR", BASE_DIR / "var")).resolve()


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():  # unset or empty (compose's `${X:-}`): the default
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key_from_file(key_file: Path) -> str:
    """The embedded default's key: generated once per data folder, never committed.

    The file is created with mode 600 from the start and appears whole or not
    at all (written to a private temp file, then linked into place), so a web
    process and a worker starting together agree on one key.
    """
    if key_file.exists():
        return key_file.read_text().strip()
    from django.core.management.utils import get_random_secret_key

    key_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = key_file.with_name(f".{key_file.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(get_random_secret_key())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, key_file)  # fails if another process created it first: use theirs
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return key_file.read_text().strip()


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "") or _secret_key_from_file(
    VAR_DIR / "secret_key"
)

# No DJANGO_ALLOWED_HOSTS: the embedded default, served on loopback (`make run` binds
# 127.0.0.1), answers any Host. Production names its hosts; loopback names are added
# so the container health check (http://127.0.0.1/healthz) is answered.
_HOSTS = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if h.strip()]
ALLOWED_HOSTS = _HOSTS + ["localhost", "127.0.0.1", "[::1]"] if _HOSTS else ["*"]
CSRF_TRUSTED_ORIGINS = [
    o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o
]

# --- HTTPS (production) -----------------------------------------------------
# On when hosts are named (and not `*`) and DEBUG is off: secure cookies, a redirect
# to https (the health check exempted) and HSTS. DJANGO_HTTPS=false serves plain
# HTTP on a trusted network (`check --deploy` then says so).
HTTPS = env_bool("DJANGO_HTTPS", bool(_HOSTS) and "*" not in _HOSTS and not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", HTTPS)
# Behind a TLS proxy: the header it sets and its value, e.g. "X-Forwarded-Proto: https".
# Only set it when the proxy always sets (or strips) that header.
_PROXY_SSL = os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER", "").strip()
if _PROXY_SSL:
    _header, _sep, _value = _PROXY_SSL.partition(":")
    if not _sep or not _header.strip() or not _value.strip():
        raise ValueError(
            f"DJANGO_SECURE_PROXY_SSL_HEADER={_PROXY_SSL!r}: expected 'Header-Name: value', "
            "e.g. 'X-Forwarded-Proto: https'"
        )
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + _header.strip().upper().replace("-", "_"),
        _value.strip(),
    )

INSTALLED_APPS = [
    "inspection.admin_apps.RustwatchAdminConfig",  # the admin, open to supervisors too
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",  # hashed API tokens; the model is inspection.ApiToken
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / Redoc assets served locally (no CDN)
    "django_celery_beat",
    "inspection",
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
]

ROOT_URLCONF = "inspection.urls"
WSGI_APPLICATION = "inspection.wsgi.application"

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

# --- Database: SQLite (WAL) by default, PostgreSQL via DATABASE_URL --------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
SQLITE_OPTIONS = {
    # WAL lets the web process read while a worker writes.
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    # A transaction takes the write lock when it starts: concurrent saves queue up
    # (like PostgreSQL's row lock) instead of failing with "database is locked".
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # sqlite:///path: same options
        DATABASES["default"]["OPTIONS"] = {
            **SQLITE_OPTIONS,
            **DATABASES["default"].get("OPTIONS", {}),
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "rustwatch.sqlite3",
            "OPTIONS": SQLITE_OPTIONS,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ModelBackend for passwords and stored permissions; the role rule gives supervisors
# their admin permissions (inspection/roles.py).
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "inspection.roles.SupervisorPermissionBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TZ_NAME", "UTC")
USE_I18N = True
USE_TZ = True

# --- Files -------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Upload limits (bytes and decoded pixels). Django's own limits are raised so
# our validator, not a generic 400, answers an oversize photo.
RUSTWATCH_MAX_UPLOAD_BYTES = env_int("RUSTWATCH_MAX_UPLOAD_BYTES", 40 * 1024 * 1024)
RUSTWATCH_MAX_PIXELS = env_int("RUSTWATCH_MAX_PIXELS", 80_000_000)
RUSTWATCH_MAX_IMPORT_BYTES = env_int("RUSTWATCH_MAX_IMPORT_BYTES", 2 * 1024 * 1024 * 1024)
RUSTWATCH_THUMBNAIL_SIZE = env_int("RUSTWATCH_THUMBNAIL_SIZE", 320)
# Hamming distance (of 64 bits) under which two photos are near-duplicates.
RUSTWATCH_PHASH_DISTANCE = env_int("RUSTWATCH_PHASH_DISTANCE", 6)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 500

# --- Celery ------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
# How often an idle worker looks for new tasks on the filesystem broker (up to this long
# added to every prediction request; Redis hands tasks over as they come). 1 s, kombu's
# default (loop.py predict p50 ~1.0 s). At 0.1 s two runs answered all requests (p50 ~0.3 s)
# but in one only 15 of 50 got their answer within the API's wait (the rest a 202 and a
# job URL), unexplained (kombu's filesystem reader does not take its writer's lock): lower
# it once that is understood.
_POLL = os.environ.get("RUSTWATCH_PREDICT_POLL_S", "").strip() or "1"
try:
    RUSTWATCH_PREDICT_POLL_S = float(_POLL)
except ValueError:
    RUSTWATCH_PREDICT_POLL_S = float("nan")
if not 0 < RUSTWATCH_PREDICT_POLL_S <= 60:
    raise ValueError(f"RUSTWATCH_PREDICT_POLL_S={_POLL!r}: expected seconds in (0, 60], e.g. 1")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("in", "processed", "control"):
        (BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "in"),
        "data_folder_out": str(BROKER_DIR / "in"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": RUSTWATCH_PREDICT_POLL_S,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # An unacknowledged task (acks_late) is handed out again after this long: it must
    # outlast the longest job, or a second worker would start a training still running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("RUSTWATCH_VISIBILITY_TIMEOUT", 8 * 3600)
    }
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A prefork child of a `predict` worker imports TensorFlow and loads the deployed models
# before it reports "up" (inspection/tasks/scoring.py; children of `train` and `default`-only
# workers load nothing); Celery's 4 s default killed those children on a busy CPU.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env_int("RUSTWATCH_WORKER_START_TIMEOUT", 120)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "inspection.tasks.training.*": {"queue": "train"},
    "inspection.tasks.scoring.*": {"queue": "predict"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- The learning loop: jobs, training runs, the promotion gate --------------
# Soft / hard time limits per job kind (seconds): the soft one raises in the task, which
# fails the job in words; the hard one kills the pool process.
RUSTWATCH_JOB_TIME_LIMITS = {
    "train": (
        env_int("RUSTWATCH_TRAIN_SOFT_LIMIT", 6 * 3600),
        env_int("RUSTWATCH_TRAIN_HARD_LIMIT", 6 * 3600 + 300),
    ),
    "import": (
        env_int("RUSTWATCH_IMPORT_SOFT_LIMIT", 3600),
        env_int("RUSTWATCH_IMPORT_HARD_LIMIT", 3900),
    ),
    "export": (
        env_int("RUSTWATCH_EXPORT_SOFT_LIMIT", 3600),
        env_int("RUSTWATCH_EXPORT_HARD_LIMIT", 3900),
    ),
}
# A running job's heartbeat is refreshed this often; one silent for RUSTWATCH_JOB_STALE_S
# has lost its worker (killed, machine gone) and is failed by the next worker that looks.
RUSTWATCH_JOB_HEARTBEAT_S = env_int("RUSTWATCH_JOB_HEARTBEAT_S", 15)
RUSTWATCH_JOB_STALE_S = env_int("RUSTWATCH_JOB_STALE_S", 120)
# How long a training run waits between looks while another run holds the train lock.
RUSTWATCH_TRAIN_WAIT_S = env_int("RUSTWATCH_TRAIN_WAIT_S", 30)
# ml settings of a run (JSON: {"classifier": {...ClassifierConfig}, "detector": {...}});
# tests and the benchmarks set tiny ones. Empty: the ml defaults.
RUSTWATCH_TRAIN_CONFIG = json.loads(os.environ.get("RUSTWATCH_TRAIN_CONFIG", "") or "{}")
# What a run uses where RUSTWATCH_TRAIN_CONFIG is silent (per model kind, key by key): a
# detector that keeps "train" to "suggestions on every unlabelled photo" under 5 minutes
# on a 2-core CPU (benchmarks/loop.py train, benchmarks/warm_start.py); the ml defaults
# (384 px, 60 epochs) are for a GPU worker (docker-compose.yml sets them there).
RUSTWATCH_TRAIN_DEFAULTS = {"classifier": {}, "detector": {"image_size": 256, "epochs": 24}}
# Warm start: a run starts its detector from the deployed detector's weights when that
# one has the same architecture (else from ImageNet, and the run's log says why), trained
# for RUSTWATCH_WARM_START_EPOCHS epochs (at most the config's; 0: the config's). A run
# may say otherwise (`warm_start` in POST /api/v1/runs/). The classifier always reuses
# the embedding cache.
RUSTWATCH_WARM_START = env_bool("RUSTWATCH_WARM_START", True)
RUSTWATCH_WARM_START_EPOCHS = env_int("RUSTWATCH_WARM_START_EPOCHS", 12)
# Where the worker keeps its scratch folders and the embedding cache (local disk).
RUSTWATCH_WORK_DIR = Path(os.environ.get("RUSTWATCH_WORK_DIR", VAR_DIR / "work"))
# The gate: a candidate is deployed by itself only if no metric is worse than the
# deployed model's by more than its margin (same validation photos, same run).
RUSTWATCH_GATE_MARGINS = {
    "classifier": {"roc_auc": 0.02, "accuracy": 0.03, "recall_rust": 0.05},
    "detector": {"AP50": 0.02, "AP": 0.02},
    **json.loads(os.environ.get("RUSTWATCH_GATE_MARGINS", "") or "{}"),
}
# Triggers: a run after this many new human labels since the last run (0: off), and the
# nightly run's schedule (a django-celery-beat crontab, editable in the admin).
RUSTWATCH_TRAIN_AFTER_LABELS = env_int("RUSTWATCH_TRAIN_AFTER_LABELS", 50)
RUSTWATCH_NIGHTLY_CRON = os.environ.get("RUSTWATCH_NIGHTLY_CRON", "0 2 * * *")
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Serving: suggestions, the queue, the prediction API ------------------------
# Photos per `predict` scoring task; suggestions kept per photo (score floor, at most N boxes).
RUSTWATCH_SCORE_BATCH = env_int("RUSTWATCH_SCORE_BATCH", 16)
RUSTWATCH_SUGGESTION_MIN_SCORE = float(os.environ.get("RUSTWATCH_SUGGESTION_MIN_SCORE", "0.3"))
RUSTWATCH_SUGGESTION_MAX_BOXES = env_int("RUSTWATCH_SUGGESTION_MAX_BOXES", 50)
# Detector boxes under this score are not looked at, not even for the queue's uncertainty.
RUSTWATCH_DETECTOR_SCORE_FLOOR = float(os.environ.get("RUSTWATCH_DETECTOR_SCORE_FLOOR", "0.05"))
# Queue: how long a handed-out photo stays an inspector's; how long a skip keeps it from them;
# how many of the best candidates the diversity step chooses among.
RUSTWATCH_QUEUE_LEASE_S = env_int("RUSTWATCH_QUEUE_LEASE_S", 15 * 60)
RUSTWATCH_QUEUE_SKIP_S = env_int("RUSTWATCH_QUEUE_SKIP_S", 24 * 3600)
RUSTWATCH_QUEUE_POOL = env_int("RUSTWATCH_QUEUE_POOL", 20)
# How often beat re-ranks the queue from the cached scores (the PeriodicTask "queue
# re-rank", created with this interval when migrating; edit it in the admin afterwards).
RUSTWATCH_QUEUE_RERANK_MINUTES = env_int("RUSTWATCH_QUEUE_RERANK_MINUTES", 60)
# Prediction API: how long a request waits for the worker before answering 202 with the
# job; requests per token (DRF rate: "60/min", "1000/hour").
RUSTWATCH_PREDICT_WAIT_S = float(os.environ.get("RUSTWATCH_PREDICT_WAIT_S", "5"))
RUSTWATCH_PREDICT_RATE = os.environ.get("RUSTWATCH_PREDICT_RATE", "60/min")
RUSTWATCH_PREDICT_MAX_BATCH = env_int("RUSTWATCH_PREDICT_MAX_BATCH", 32)
# Throttle counters must be shared by every web process: files in the data folder (the
# embedded setup), or a cache server, e.g. RUSTWATCH_CACHE_URL=redis://redis:6379/1 (a
# database of its own: never the broker's).
RUSTWATCH_CACHE_URL = os.environ.get("RUSTWATCH_CACHE_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": RUSTWATCH_CACHE_URL}
        if RUSTWATCH_CACHE_URL
        else {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    ),
}

# --- API ---------------------------------------------------------------------
# API tokens (django-rest-knox): only a SHA-512 digest is stored; "Authorization:
# Token rw_..." as before. A token lives RUSTWATCH_TOKEN_DAYS unless its issuer
# says otherwise (at most RUSTWATCH_TOKEN_MAX_DAYS).
KNOX_TOKEN_MODEL = "inspection.ApiToken"
# knox's own migrations create its default token table even when the model is
# swapped; unused, that table's key to auth_user breaks flushing users (PostgreSQL).
MIGRATION_MODULES = {"knox": None}
RUSTWATCH_TOKEN_DAYS = env_int("RUSTWATCH_TOKEN_DAYS", 90)
RUSTWATCH_TOKEN_MAX_DAYS = env_int("RUSTWATCH_TOKEN_MAX_DAYS", 730)
REST_KNOX = {
    "TOKEN_MODEL": KNOX_TOKEN_MODEL,
    "TOKEN_TTL": timedelta(days=RUSTWATCH_TOKEN_DAYS),
    "TOKEN_PREFIX": "rw_",  # recognisable to secret scanners
    "AUTH_HEADER_PREFIX": "Token",
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies (uploads and imports are multipart, declared on their views): one
    # body format per operation, so the schema and the server agree on every field.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "inspection.api.schema.ApiSchema",
    "EXCEPTION_HANDLER": "inspection.api.errors.exception_handler",
    "DEFAULT_FILTER_BACKENDS": [],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Rustwatch API",
    "DESCRIPTION": "Upload inspection photos, label rust boxes, get rust predictions.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a `kind` / `state` choice: each enum gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "AssetKindEnum": "inspection.models.Asset.Kind",
        "JobKindEnum": "inspection.models.Job.Kind",
        "JobStateEnum": "inspection.models.Job.State",
        "ModelKindEnum": "inspection.models.ModelKind",
        "BoxStateEnum": "inspection.models.Box.State",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
