"""Rates written as text ("600/min"), read where they are set (settings) and where they are applied."""

SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def parse_rate(rate: str) -> tuple[int, int]:
    """Return (requests, window seconds) from text like "600/min" or "10/s"; raise ValueError otherwise."""
    count, _, period = rate.partition("/")
    if not count.strip().isdigit() or period.strip() not in SECONDS:
        raise ValueError(f"rate {rate!r} is not like '600/min'")
    return int(count), SECONDS[period.strip()]
