"""Annotations: a moment worth marking on every chart (a deploy, a config change), posted by a service."""

from django.db import models

MAX_TEXT_LENGTH = 500


class Annotation(models.Model):
    """One marked moment. The service and stage are the posting key's, never taken from the body."""

    text = models.CharField(max_length=MAX_TEXT_LENGTH)
    timestamp = models.DateTimeField()
    service = models.CharField(max_length=100)
    stage = models.CharField(max_length=50, blank=True, default="")
    # Which key posted it (shown in the admin to tell deploy pipelines apart); blank when made by hand.
    key_prefix = models.CharField(max_length=16, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["timestamp", "id"]
        indexes = [models.Index(fields=["timestamp"], name="annotation_ts")]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M} {self.service}: {self.text[:60]}"
