from django.contrib import admin

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "actor_name", "action", "target", "via", "ip")
    list_filter = ("action", "via")
    search_fields = ("actor_name", "=target")
    date_hierarchy = "at"
    readonly_fields = ("at", "actor", "actor_name", "action", "target", "via", "ip")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
