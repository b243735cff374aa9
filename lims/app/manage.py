"""Command-line entry of the LIMS reference application.

The settings module is named here and in lims_site/wsgi.py only: neither the
image nor the compose file sets DJANGO_SETTINGS_MODULE.
"""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lims_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
