"""What ingestion tells the rest of the portal, so it hands work on without importing who does it."""

from django.dispatch import Signal

# Sent after the commit that stored new raw events, with `event_ids` (their primary keys) and, when the
# sender knows them, `client_times`: the least and greatest client time among them (ClientTimeBounds), so
# the pipeline reads them in their days' partitions only. Receivers must not raise: the events are stored,
# and a failed hand-off is for the sweeper to repair.
events_stored = Signal()
