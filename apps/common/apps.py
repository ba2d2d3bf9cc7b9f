from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "apps.common"
    label = "common"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from .dbtypes import use_compiled_timestamptz_loader
        from .jsonfields import register_sqlite_functions

        connection_created.connect(
            use_compiled_timestamptz_loader, dispatch_uid="compiled_timestamptz_loader"
        )
        connection_created.connect(register_sqlite_functions, dispatch_uid="sqlite_functions")
