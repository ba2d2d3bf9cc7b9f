"""Daily retention, run by Celery beat."""

from dataclasses import asdict

from celery import shared_task

from .services import retention_apply


@shared_task(name="lifecycle.apply_retention", time_limit=3600)
def apply_retention() -> dict:
    """Delete what is past its retention age."""
    return {k: str(v) if not isinstance(v, (int, list)) else v for k, v in asdict(retention_apply()).items()}
