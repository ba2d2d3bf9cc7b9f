from django.contrib import admin

from .models import Chart, Dashboard


class ChartInline(admin.TabularInline):
    model = Chart
    extra = 0
    fields = ("position", "title", "query_string")


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "owner", "updated_at")
    search_fields = ("name", "slug", "owner__username")
    readonly_fields = ("created_at", "updated_at")
    inlines = [ChartInline]
