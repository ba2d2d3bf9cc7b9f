"""Saved dashboards: a named, shareable list of charts, each an explorer query string re-run on every view.

A chart stores the explorer's URL state rather than data, so a saved chart always shows fresh numbers and
"open in explorer" is a plain link.
"""

from django.conf import settings
from django.db import models

from apps.accounts.permissions import has_role
from apps.accounts.roles import ADMIN


class Dashboard(models.Model):
    name = models.CharField(max_length=120)
    # The share link is /dashboards/d/<slug>/; any product or admin user may read it.
    slug = models.SlugField(max_length=140, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dashboards")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    def editable_by(self, user) -> bool:
        """Return whether a person may arrange, rename or delete this dashboard: its owner or an admin."""
        return user.is_authenticated and (user.pk == self.owner_id or has_role(user, ADMIN))


class Chart(models.Model):
    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="charts")
    title = models.CharField(max_length=200)
    # The explorer's canonical query string (without `format`), e.g. "event=search_made&measure=count&…".
    query_string = models.TextField()
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["dashboard", "position", "pk"]

    def __str__(self) -> str:
        return self.title
