from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "apps.ingest"
    label = "ingest"
    verbose_name = "Ingestion"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from .keys import key_changed, service_changed
        from .models import ApiKey, Service

        for signal in (post_save, post_delete):
            signal.connect(key_changed, sender=ApiKey, dispatch_uid=f"ingest.keys.key_{signal is post_save}")
            signal.connect(
                service_changed, sender=Service, dispatch_uid=f"ingest.keys.service_{signal is post_save}"
            )
