"""WSGI entry for gunicorn (lims_site.wsgi:application), as Django's project
template writes it: the settings module comes from this setdefault, not from
the container's environment."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lims_site.settings")

application = get_wsgi_application()
