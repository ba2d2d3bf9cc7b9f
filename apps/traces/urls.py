from django.urls import path

from . import converters, views  # noqa: F401  (converters registers <id:>)

urlpatterns = [
    path("traces/", views.trace_search, name="trace-search"),
    path("traces/<id:correlation_id>/surrounding/", views.trace_surrounding, name="trace-surrounding"),
    path("traces/<id:correlation_id>/", views.trace_detail, name="trace-detail"),
    path("users/<id:user_id>/", views.user_detail, name="user-detail"),
]
