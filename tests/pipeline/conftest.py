"""The pipeline tests share the lifecycle tests' old events (the range commands run over them)."""

from tests.lifecycle.conftest import days, old_events, send_old  # noqa: F401
