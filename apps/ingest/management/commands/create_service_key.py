"""`manage.py create_service_key <service> --stage <stage> [--forwarder]`: the key, shown once, is all that
goes to standard output (`KEY=$(manage.py create_service_key …)`); what was made goes to standard error."""

from django.core.management.base import CommandError, CommandParser

from apps.accounts.actors import Actor
from apps.common.commands import OperatorCommand
from apps.ingest.forms import KeyCreateForm
from apps.ingest.services import service_key_create

ARGUMENT = {"service": "service", "stage": "--stage", "can_forward": "--forwarder", "label": "--label"}


class Command(OperatorCommand):
    help = (
        "Create an API key for a service (the service is created when new). The key is shown only once, "
        "alone on standard output; what was made goes to standard error."
    )
    examples = (
        "manage.py create_service_key search-api --stage prod",
        "manage.py create_service_key log-shipper --stage prod --forwarder --label 'fluent-bit on web-1'",
        "KEY=$(manage.py create_service_key gateway --stage staging)   # the key and nothing else",
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("service", help="service name, e.g. download-server")
        parser.add_argument("--stage", required=True, help="e.g. prod, staging, dev")
        parser.add_argument("--forwarder", action="store_true", help="may send records for other services")
        parser.add_argument("--label", default="", help="what the key is for, shown in the admin")

    def handle(self, *args, service: str, stage: str, forwarder: bool, label: str, **options) -> None:
        # The key page's rules: a key the page would refuse (one conform refuses every event of) is refused.
        form = KeyCreateForm({"service": service, "stage": stage, "can_forward": forwarder, "label": label})
        if not form.is_valid():
            raise CommandError(
                "; ".join(
                    f"{ARGUMENT[name]} {form.data[name]!r}: {' '.join(errors)}"
                    for name, errors in form.errors.items()
                )
            )
        data = form.cleaned_data
        api_key, raw_key = service_key_create(
            service_name=data["service"],
            stage=data["stage"],
            can_forward=data["can_forward"],
            label=data["label"],
            actor=Actor.command(),
        )
        scope = "own service and forwarding for others" if forwarder else "own service only"
        self.note(
            f"Created key {api_key.prefix} for {api_key.service.name}/{api_key.stage} ({scope}). "
            "Store it now: it is not shown again and only its hash is kept."
        )
        self.stdout.write(raw_key)
