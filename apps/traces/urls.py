from django.urls import path

from . import views

urlpatterns = [
    path("traces/", views.trace_search, name="trace-search"),
    path("traces/<path:correlation_id>/surrounding/", views.trace_surrounding, name="trace-surrounding"),
    path("traces/<path:correlation_id>/", views.trace_detail, name="trace-detail"),
    path("users/<path:user_id>/", views.user_detail, name="user-detail"),
]
