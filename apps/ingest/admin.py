from django.contrib import admin, messages

from apps.accounts.actors import Actor, audit
from apps.accounts.models import AuditEntry

from .models import ApiKey, RawEvent, Service
from .services import service_key_revoke


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "created_at")
    search_fields = ("name",)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "prefix",
        "service",
        "stage",
        "can_forward",
        "label",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("stage", "can_forward", "revoked_at")
    search_fields = ("prefix", "service__name", "label")
    # Keys are made by `create_service_key` (the secret is shown once); the admin never sees a secret.
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoked instead (audited); the raw events keep the id of the key that sent them

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset) -> None:
        actor = Actor.from_request(request, via="admin")
        for api_key in queryset:
            service_key_revoke(api_key=api_key, actor=actor)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


# The list page's own parameters: the page, ordering, "show all", popups, the search box (audited apart).
LISTING_PARAMETERS = {"p", "o", "all", "q", "_to_field", "_popup", "e"}


@admin.register(RawEvent)
class RawEventAdmin(admin.ModelAdmin):
    list_display = (
        "received_at",
        "service",
        "stage",
        "type",
        "event",
        "level",
        "user_id",
        "correlation_id",
        "aggregated",
        "awaiting_index",
        "dead_lettered_at",
    )
    list_filter = ("type", "level", "service", "stage")
    search_fields = ("=event_id", "=correlation_id", "=user_id", "event")
    date_hierarchy = "received_at"
    readonly_fields = [f.name for f in RawEvent._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).with_awaiting_index().with_aggregated()

    @admin.display(boolean=True, description="aggregated")
    def aggregated(self, event: RawEvent) -> bool:
        return event.aggregated

    @admin.display(boolean=True, description="awaiting index")
    def awaiting_index(self, event: RawEvent) -> bool:
        return event.awaiting_index

    def has_delete_permission(self, request, obj=None) -> bool:
        # A deleted row would stay counted in the rollups and searchable: `purge_user` deletes (audited).
        return False

    # Raw events hold what users did: reading them here is audited as on the trace pages, whether found by
    # the search box or by a filter in the URL (`?user_id=alice` lists that user's events too).
    def changelist_view(self, request, extra_context=None):
        searched = request.GET.get("q", "").strip()
        filters = [f"{name}={value}" for name, value in request.GET.items() if name not in LISTING_PARAMETERS]
        if searched or filters:
            what = [f"matching {searched}"] if searched else []
            what += [f"where {', '.join(filters)}"] if filters else []
            audit(
                actor=Actor.from_request(request, via="admin"),
                action=AuditEntry.REQUESTS_SEARCHED,
                target=f"raw events {' '.join(what)}"[: AuditEntry._meta.get_field("target").max_length],
            )
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        event = self.get_object(request, object_id)
        if event is not None:
            audit(
                actor=Actor.from_request(request, via="admin"),
                action=AuditEntry.RAW_EVENT_VIEWED,
                target=f"{event.service}:{event.event_id} (user {event.user_id or '-'})",
            )
        return super().change_view(request, object_id, form_url, extra_context)


class DeadLetteredFilter(admin.SimpleListFilter):
    title = "pipeline state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            ("dead", "dead-lettered"),
            ("pending", "waiting for aggregation"),
            ("rejected", "refused by index"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "dead":
            return queryset.dead_lettered()
        if self.value() == "pending":
            return queryset.awaiting_aggregation()
        if self.value() == "rejected":
            return queryset.index_rejected()
        return queryset


RawEventAdmin.list_filter = (DeadLetteredFilter, *RawEventAdmin.list_filter)
