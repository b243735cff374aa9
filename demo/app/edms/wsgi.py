"""WSGI entry point used by gunicorn (edms.wsgi:application)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edms.settings")

application = get_wsgi_application()
