"""Pages of the dashboards app, included at the site root: `/` is the overview (named `home`)."""

from django.urls import path

from . import users_page, views

urlpatterns = [
    path("", views.overview, name="home"),
    path("dashboards/", views.explorer, name="dashboard-explorer"),
    path("dashboards/users/", users_page.point_users, name="dashboard-users"),
    path("dashboards/names/events/", views.event_names_search, name="dashboard-event-names"),
    path("dashboards/charts/", views.chart_save, name="chart-save"),
    path("dashboards/d/", views.dashboard_list, name="dashboard-list"),
    path("dashboards/d/<slug:slug>/", views.dashboard_detail, name="dashboard-detail"),
    path("dashboards/d/<slug:slug>/charts/<int:chart_id>/", views.dashboard_chart, name="dashboard-chart"),
    path("dashboards/d/<slug:slug>/delete/", views.dashboard_delete, name="dashboard-delete"),
    path("dashboards/d/<slug:slug>/charts/<int:chart_id>/move/", views.chart_move, name="chart-move"),
    path("dashboards/d/<slug:slug>/charts/<int:chart_id>/remove/", views.chart_remove, name="chart-remove"),
]
