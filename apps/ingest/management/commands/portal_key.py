"""`manage.py portal_key --file PATH`: the portal's own service key, kept in a file and reused while valid;
the key alone on standard output."""

import os
from pathlib import Path

from django.core.management.base import CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.common.commands import OperatorCommand
from apps.common.secrets import secret_hash as key_hash
from apps.ingest.forms import KeyCreateForm
from apps.ingest.models import ApiKey
from apps.ingest.services import service_key_create

PORTAL_SERVICE = "skywatch-portal"
LABEL = "the portal's own logs"


class Command(OperatorCommand):
    help = (
        "Print a valid key for the portal's own events, creating one (and saving it to --file) if the file "
        "holds none that still works. No key is made when the file cannot be written."
    )
    examples = ("manage.py portal_key --file .cache/portal-observatory-key   # make run does this",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file", required=True, help="where the key is kept between runs (keep it private)"
        )
        parser.add_argument("--stage", default="dev", help="the stage its events carry (default dev)")

    def handle(self, *args, file: str, stage: str, **options) -> None:
        # The key page's rules: a stage conform would refuse every event of makes a key that sends nothing.
        form = KeyCreateForm({"service": PORTAL_SERVICE, "stage": stage, "label": LABEL})
        if not form.is_valid():
            raise CommandError(f"--stage {stage!r}: {' '.join(form.errors.get('stage', form.errors))}")
        stage = form.cleaned_data["stage"]
        path = Path(file)
        try:
            saved = path.read_text().strip() if path.exists() else ""
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"cannot read the key file {path}: {error}") from error
        usable = ApiKey.objects.usable(timezone.now()).filter(
            key_hash=key_hash(saved), service__name=PORTAL_SERVICE, stage=stage
        )
        if saved and usable.exists():
            self.stdout.write(saved)
            return
        try:
            # One transaction: a key whose file cannot be written is not kept (a working key nobody holds).
            with transaction.atomic():
                _, raw_key = service_key_create(
                    service_name=PORTAL_SERVICE, stage=stage, label=LABEL, actor=Actor.command()
                )
                _write_private(path, raw_key + "\n")
        except OSError as error:
            raise CommandError(f"cannot save the key to {path}: {error}; no key was made") from error
        self.stdout.write(raw_key)


def _write_private(path: Path, text: str) -> None:
    """Write text readable by its owner only from the first byte (no moment under the umask's mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.replace(fresh, path)
    except OSError:
        fresh.unlink(missing_ok=True)
        raise
