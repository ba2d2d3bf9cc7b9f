"""The Celery app. Settings come from Django's settings under the CELERY_ namespace."""

import os

from celery import Celery

import observatory.celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skywatch_portal.settings")

app = Celery("skywatch_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Correlation IDs travel in task headers and are restored in the worker, so task logs join the trail.
observatory.celery.install(app)
