"""The Celery app. Settings come from Django's settings under the CELERY_ namespace."""

import gc
import os

from celery import Celery
from celery.signals import task_prerun, worker_process_init, worker_ready

import observatory.celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skywatch_portal.settings")

app = Celery("skywatch_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Correlation IDs travel in task headers and are restored in the worker, so task logs join the trail.
observatory.celery.install(app)


@task_prerun.connect
def _usable_database_connection(sender=None, **kwargs) -> None:
    """Drop a connection the server ended (a restart, an idle timeout) before a worker's task uses it:
    with health checks on, the task's first query pings first. Celery no longer reconnects for every task.
    An eager task runs inside a request, whose connection is the request's business."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@worker_process_init.connect
@worker_ready.connect
def _freeze_loaded_objects(**kwargs) -> None:
    """Put what loading the worker made (modules, settings, the app and its tasks) out of the collector's
    sight, as the web process does (wsgi.py): a full collection walked all of it, ~70 ms with the GIL held,
    six times per 50,000 pipeline events (a tenth of the pipeline's time, its search bulks' thread stalled
    too). A prefork child freezes after the fork (worker_process_init), a solo worker once ready."""
    gc.freeze()
