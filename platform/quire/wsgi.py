"""WSGI entry point (gunicorn quire.wsgi:application, run with `platform/` on the path)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quire.settings")
application = get_wsgi_application()
