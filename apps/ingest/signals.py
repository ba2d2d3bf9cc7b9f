"""What ingestion tells the rest of the portal, so it hands work on without importing who does it."""

from django.dispatch import Signal

# Sent after the commit that stored new raw events, with `event_ids` (their primary keys). Receivers
# must not raise: the events are stored, and a failed hand-off is for the sweeper to repair.
events_stored = Signal()
