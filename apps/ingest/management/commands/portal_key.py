"""`manage.py portal_key --file PATH`: the portal's own service key, kept in a file and reused while valid."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.common.secrets import secret_hash as key_hash
from apps.ingest.models import ApiKey
from apps.ingest.services import service_key_create

PORTAL_SERVICE = "skywatch-portal"


class Command(BaseCommand):
    help = "Print a valid key for the portal's own events, creating one (and saving it to --file) if needed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file", required=True, help="where the key is kept between runs (keep it private)"
        )
        parser.add_argument("--stage", default="dev")

    def handle(self, *args, file: str, stage: str, **options) -> None:
        path = Path(file)
        saved = path.read_text().strip() if path.exists() else ""
        if saved and ApiKey.objects.usable(timezone.now()).filter(key_hash=key_hash(saved)).exists():
            self.stdout.write(saved)
            return
        _, raw_key = service_key_create(
            service_name=PORTAL_SERVICE, stage=stage, label="the portal's own logs", actor=Actor.command()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(raw_key + "\n")
        path.chmod(0o600)
        self.stdout.write(raw_key)
