"""`manage.py create_service_key <service> --stage <stage> [--forwarder]`: prints the key once, last."""

import re

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.actors import Actor
from apps.ingest.services import service_key_create

SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


class Command(BaseCommand):
    help = "Create an API key for a service (the service is created when new). The key is shown only once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("service", help="service name, e.g. download-server")
        parser.add_argument("--stage", required=True, help="e.g. prod, staging, dev")
        parser.add_argument("--forwarder", action="store_true", help="may send records for other services")
        parser.add_argument("--label", default="", help="what the key is for, shown in the admin")

    def handle(self, *args, service: str, stage: str, forwarder: bool, label: str, **options) -> None:
        if not SERVICE_NAME.match(service):
            raise CommandError(f"service {service!r}: use lowercase letters, digits, '-' and '_' (max 100)")
        if not stage.strip() or len(stage) > 50:
            raise CommandError("--stage must be 1 to 50 characters")
        api_key, raw_key = service_key_create(
            service_name=service,
            stage=stage.strip(),
            can_forward=forwarder,
            label=label,
            actor=Actor.command(),
        )
        scope = "own service and forwarding for others" if forwarder else "own service only"
        self.stdout.write(f"Created key {api_key.prefix} for {service}/{api_key.stage} ({scope}).")
        self.stdout.write("Store it now: it is not shown again and only its hash is kept.")
        self.stdout.write(raw_key)
