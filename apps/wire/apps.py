from django.apps import AppConfig


class WireConfig(AppConfig):
    name = "apps.wire"
    label = "wire"
    verbose_name = "Other wire formats"
