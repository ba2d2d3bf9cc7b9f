from django.apps import AppConfig


class PipelineConfig(AppConfig):
    name = "apps.pipeline"
    label = "pipeline"

    def ready(self) -> None:
        from apps.ingest.signals import events_stored

        from .receivers import on_events_stored

        events_stored.connect(on_events_stored, dispatch_uid="pipeline.on_events_stored")
