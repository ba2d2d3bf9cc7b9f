"""Other senders' wire formats (PostHog capture, Segment's HTTP tracking API), handed to `events_ingest`."""
