from django.urls import path

from . import views

urlpatterns = [
    path("keys/", views.key_list, name="key-list"),
    path("keys/<slug:prefix>/rotate/", views.key_rotate, name="key-rotate"),
    path("keys/<slug:prefix>/revoke/", views.key_revoke, name="key-revoke"),
]
