"""Admins list, correct and delete annotations here (Django's admin history records each change)."""

from django.contrib import admin

from .models import Annotation


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ("timestamp", "service", "stage", "text", "key_prefix", "created_at")
    list_filter = ("service", "stage")
    search_fields = ("text", "service")
    date_hierarchy = "timestamp"
    readonly_fields = ("key_prefix", "created_at")
