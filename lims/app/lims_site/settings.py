"""Settings of the LIMS reference application.

Everything that differs between deployments comes from LIMS_* environment
variables (lims/run/.env and the compose file); there is no POSTGRES_* or
DJANGO_* variable anywhere. Times are stored in UTC and shown in Europe/Berlin,
whose daylight saving changes the seed straddles.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def setting(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"the environment variable {name} is required")
    return value


SECRET_KEY = setting("LIMS_SECRET_KEY")
DEBUG = setting("LIMS_DEBUG", "0").lower() in ("1", "true", "yes")
ALLOWED_HOSTS = [
    h.strip()
    for h in setting("LIMS_ALLOWED_HOSTS", "localhost,127.0.0.1,web").split(",")
    if h.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "personnel",
    "specimens",
    "analyses",
    "ledger",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "lims_site.urls"
WSGI_APPLICATION = "lims_site.wsgi.application"

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

# Every connection needs the password, the server's own socket included.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": setting("LIMS_DB_NAME", "lims"),
        "USER": setting("LIMS_DB_USER", "lims_owner"),
        "PASSWORD": setting("LIMS_DB_PASSWORD", ""),
        "HOST": setting("LIMS_DB_HOST", "pg"),
        "PORT": setting("LIMS_DB_PORT", "5432"),
        "OPTIONS": {"connect_timeout": 5, "application_name": "lims"},
    }
}

AUTH_USER_MODEL = "personnel.Analyst"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "de-de"
TIME_ZONE = setting("LIMS_TIME_ZONE", "Europe/Berlin")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = setting("LIMS_STATIC_ROOT", "/srv/lims/static")
MEDIA_URL = "/uploads/"
MEDIA_ROOT = setting("LIMS_MEDIA_ROOT", "/srv/lims/uploads")
# Uploads keep the group's write bit: the writer and the web service share them.
FILE_UPLOAD_PERMISSIONS = 0o664
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o2775

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "line"}},
    "root": {"handlers": ["stderr"], "level": setting("LIMS_LOG_LEVEL", "INFO")},
    "loggers": {"django": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}
