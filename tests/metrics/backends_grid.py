"""One fixed dataset with edge cases, and a grid of analytics API calls, for comparing the PostgreSQL and
SQLite answers (tests/metrics/test_backends_agree.py). Importable by a child process on SQLite too."""

import json
import math
import random
from datetime import UTC, datetime, timedelta

START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # a Friday, UTC midnight
END = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
EVENTS = ("search_made", "tile_downloaded", "report_exported", "login", "café_opened")
SERVICES = ("gateway", "download", "tiles")
LONG = "x" * 500  # values longer than a filter keeps (500): they differ only after it
MIXED = (
    1,
    1.5,
    "1",
    "1.5",
    None,
    True,
    False,
    "",
    "café",
    "日本語",
    "😀",
    1e300,
    1e16,
    12345678901234567890,
    0.30000000000000004,
    1.0,
    1.5e-07,
    0.1,
    1e-7,
    -0.0,
    {"a": 1, "b": "é"},
    [1, "two"],
    "other",
    "(none)",
    LONG + "a",
    LONG + "b",
)
BOUNDARIES = (
    datetime(2026, 11, 23, 0, 0, tzinfo=UTC),  # Monday midnight: day and week boundary
    datetime(2026, 11, 22, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
    datetime(2026, 11, 24, 12, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 11, 24, 13, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 11, 25, 7, 41, 0, tzinfo=UTC),
    datetime(2026, 11, 30, 0, 0, tzinfo=UTC),  # Monday midnight
    START,
    END - timedelta(microseconds=1),
)


def dataset(seed: int = 7, n: int = 2500, *, objects: bool = True) -> list[dict]:
    """Return the events to ingest (batch items), the same on every call. `objects`: some property values
    are JSON objects and arrays (their text differs by database: PostgreSQL writes jsonb's own)."""
    rng = random.Random(seed)
    mixed = MIXED if objects else tuple(v for v in MIXED if not isinstance(v, (dict, list)))
    span = int((END - START).total_seconds())
    users = [f"u{i}" for i in range(1, 121)] + ["U1", "ü-ser", "user with space", "x" * 200]
    out = []
    for i in range(n):
        if i < len(BOUNDARIES) * 6:
            moment = BOUNDARIES[i % len(BOUNDARIES)]
        else:
            moment = START + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(1_000_000))
        props: dict = {"n": rng.randint(0, 50), "country": rng.choice(["NL", "FR", "DE", "", "日本", "café"])}
        if rng.random() < 0.7:
            props["latency"] = round(rng.uniform(0.01, 3.0), 3)
        if rng.random() < 0.15:
            props["n"] = rng.choice(["7", None, True, 1e16, 2.5])
        if rng.random() < 0.1:
            del props["country"]
        if rng.random() < 0.5:
            props["mixed"] = rng.choice(mixed)
        if rng.random() < 0.2:
            props["big"] = rng.choice([1e300, 1e16, 12345678901234567890, 0.1, 0.2, 0.7, 1e15])
        if rng.random() < 0.1:
            # Summed, these lose the small numbers beside them in any order of addition: text only.
            props["huge"] = rng.choice([1e15, -1e15, 999999999999999.9, 0.1])
        item = {
            "event_id": str(_uuid(rng)),
            "event": rng.choice(EVENTS),
            "service": rng.choice(SERVICES),
            "stage": rng.choice(["prod", "staging"]),
            "timestamp": moment.isoformat().replace("+00:00", "Z"),
            "properties": props,
        }
        if rng.random() < 0.9:
            item["user_id"] = rng.choice(users)
        out.append(item)
    # Users with one event only, at a boundary.
    for k, moment in enumerate(BOUNDARIES):
        out.append(
            {
                "event_id": str(_uuid(rng)),
                "event": "search_made",
                "service": "gateway",
                "stage": "prod",
                "timestamp": moment.isoformat().replace("+00:00", "Z"),
                "user_id": f"single-{k}",
                "properties": {"n": 1},
            }
        )
    return out


def _uuid(rng: random.Random):
    import uuid

    return uuid.UUID(int=rng.getrandbits(128), version=4)


def load(*, objects: bool = True) -> int:
    """Ingest the dataset with a forwarder key and run the pipeline over it; return how many were stored."""
    from apps.ingest.models import RawEvent
    from apps.ingest.services import events_ingest
    from apps.pipeline.services import aggregate_chunk
    from tests.factories import make_api_key

    api_key, _ = make_api_key(service="log-shipper", can_forward=True)
    items = dataset(objects=objects)
    ids: list[int] = []
    for offset in range(0, len(items), 500):
        stored = events_ingest(
            items=items[offset : offset + 500], api_key=api_key, received_at=datetime(2026, 12, 1, tzinfo=UTC)
        )
        assert not stored.rejected, stored.rejected
        ids.extend(stored.stored_ids)
    for offset in range(0, len(ids), 400):
        aggregate_chunk(event_ids=ids[offset : offset + 400])
    assert RawEvent.objects.aggregated().count() == len(items)
    return len(items)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


RANGES = {
    "all": (START, END),
    "odd": (datetime(2026, 11, 23, 13, 37, 11, tzinfo=UTC), datetime(2026, 11, 25, 2, 0, 0, 1, tzinfo=UTC)),
    "day": (datetime(2026, 11, 24, 0, 0, tzinfo=UTC), datetime(2026, 11, 25, 0, 0, tzinfo=UTC)),
    "empty": (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 3, tzinfo=UTC)),
}
MEASURES = ("count", "unique_users", "sum:n", "avg:n", "sum:latency", "avg:latency", "sum:big", "avg:mixed")
BREAKDOWNS = ("", "service", "stage", "event", "prop:country", "prop:mixed", "prop:big", "prop:huge")
FILTERS = ((), ("country=NL",), ("mixed=1",), ("country=",), ("mixed=0.0000001",), ("big=10000000000000000",))


def series_grid(small: bool = False) -> list[dict]:
    grid = []
    ranges = {name: RANGES[name] for name in ("odd", "empty")} if small else RANGES
    measures = ("count", "unique_users", "avg:mixed", "sum:n") if small else MEASURES
    breakdowns = ("", "event", "prop:mixed", "prop:big", "prop:huge") if small else BREAKDOWNS
    filters_grid = (FILTERS[0], *FILTERS[-2:]) if small else FILTERS
    for range_name, (start, end) in ranges.items():
        for interval in ("minute", "hour", "day", "week"):
            if interval == "minute" and range_name == "all":
                continue
            for measure in measures:
                for breakdown in breakdowns:
                    for filters in filters_grid:
                        if filters and breakdown in ("stage", "event") and measure not in ("count",):
                            continue
                        params = {
                            "event": "search_made",
                            "measure": measure,
                            "interval": interval,
                            "from": iso(start),
                            "to": iso(end),
                            "breakdown": breakdown,
                            "filter": list(filters),
                        }
                        grid.append(params)
            for events in ("search_made,tile_downloaded", "café_opened,login,report_exported"):
                for measure in ("count", "unique_users", "avg:latency"):
                    for top in (2,) if small else (1, 2, 5):
                        for compare in ("false", "true"):
                            grid.append(
                                {
                                    "event": events,
                                    "measure": measure,
                                    "interval": interval,
                                    "from": iso(start),
                                    "to": iso(end),
                                    "top": top,
                                    "compare": compare,
                                }
                            )
    return grid


FUNNEL_STEPS = (
    "search_made,tile_downloaded",
    "search_made,tile_downloaded,report_exported",
    "login,login,search_made",
    "café_opened,search_made,search_made,login",
)


def funnel_grid(small: bool = False) -> list[dict]:
    grid = []
    for steps in FUNNEL_STEPS[1:3] if small else FUNNEL_STEPS:
        for window in (60, 86400) if small else (1, 60, 3600, 86400, 7 * 86400):
            for range_name in ("odd",) if small else ("all", "odd", "empty"):
                start, end = RANGES[range_name]
                for breakdown in (
                    ("", "prop:mixed") if small else ("", "service", "stage", "prop:country", "prop:mixed")
                ):
                    for extra in ({}, {"filter": "country=NL"}, {"service": "gateway", "stage": "prod"}):
                        grid.append(
                            {
                                "steps": steps,
                                "window": window,
                                "from": iso(start),
                                "to": iso(end),
                                "breakdown": breakdown,
                                "top": 3,
                                **extra,
                            }
                        )
    return grid


def retention_grid(small: bool = False) -> list[dict]:
    grid = []
    for start_event, return_event in (
        ("login", "search_made"),
        ("search_made", "search_made"),
        ("café_opened", "tile_downloaded"),
    ):
        for interval in ("day", "week"):
            for range_name in ("odd", "empty") if small else ("all", "odd", "day", "empty"):
                start, end = RANGES[range_name]
                for extra in ({}, {"filter": "mixed=1"}, {"service": "tiles"}):
                    grid.append(
                        {
                            "start_event": start_event,
                            "return_event": return_event,
                            "interval": interval,
                            "from": iso(start),
                            "to": iso(end),
                            **extra,
                        }
                    )
    return grid


def users_grid() -> list[dict]:
    grid = []
    for start, end in (
        (datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC)),
        (datetime(2026, 11, 24, 12, tzinfo=UTC), datetime(2026, 11, 24, 13, tzinfo=UTC)),
        (START, END),
    ):
        base = {"from": iso(start), "to": iso(end)}
        grid.append({**base, "event": "search_made", "limit": 200})
        grid.append({**base, "limit": 7})
        grid.append({**base, "limit": 7, "offset": 7})
        grid.append(
            {**base, "event": "search_made", "breakdown": "service", "value": "gateway", "limit": 200}
        )
        grid.append({**base, "event": "search_made", "breakdown": "prop:country", "value": "(none)"})
        grid.append({**base, "event": "search_made", "breakdown": "prop:country", "absent": "true"})
        grid.append({**base, "event": "search_made", "breakdown": "prop:mixed", "value": "(none)"})
        grid.append({**base, "event": "search_made", "breakdown": "prop:mixed", "absent": "true"})
        grid.append(
            {
                **base,
                "event": "search_made",
                "breakdown": "prop:mixed",
                "rest": "true",
                "exclude": ["1", "(none)"],
                "exclude_absent": "true",
            }
        )
        grid.append({**base, "event": "search_made", "breakdown": "prop:mixed", "value": "1"})
        grid.append({**base, "event": "search_made", "breakdown": "prop:mixed", "value": "1.5"})
        grid.append({**base, "event": "search_made", "breakdown": "prop:mixed", "value": "true"})
        grid.append({**base, "event": "search_made", "breakdown": "prop:mixed", "value": "10000000000000000"})
        grid.append(
            {
                **base,
                "event": "search_made",
                "breakdown": "prop:country",
                "rest": "true",
                "exclude": ["NL", "FR"],
            }
        )
        grid.append({**base, "event": "search_made", "filter": "country=café", "limit": 200})
        for steps in FUNNEL_STEPS[:3]:
            for step, outcome in ((1, "converted"), (2, "converted"), (2, "dropped")):
                grid.append({**base, "steps": steps, "window": 3600, "step": step, "outcome": outcome})
            grid.append(
                {**base, "steps": steps, "step": 2, "breakdown": "prop:country", "group": "NL", "limit": 200}
            )
            for group in ({"group": "(none)"}, {"absent": "true"}):
                grid.append(
                    {**base, "steps": steps, "step": 1, "breakdown": "prop:mixed", **group, "limit": 200}
                )
    return grid


def answers(small: bool = False) -> dict:
    """Call every endpoint of the grid as a product user; return {request: JSON answer or status}."""
    from django.test import Client

    from apps.accounts.services import user_create

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user_create(username="grid-product", role="product", password="correct-horse-battery"))
    out = {}
    for path, grid in (
        ("series", series_grid(small)),
        ("funnel", funnel_grid(small)),
        ("retention", retention_grid(small)),
        ("users", users_grid()),
    ):
        for params in grid:
            response = client.get(f"/api/v1/metrics/{path}", params)
            key = f"{path}?{json.dumps(params, sort_keys=True, ensure_ascii=False)}"
            out[key] = response.json() if response.status_code == 200 else {"status": response.status_code}
    out.update(catalogue_answers())
    return out


def catalogue_answers() -> dict:
    from apps.metrics import catalogue

    dau = catalogue.daily_active_users(start=START, end=datetime(2026, 12, 1, tzinfo=UTC))
    return {
        "catalogue:event_names": catalogue.event_names(),
        "catalogue:numeric_property_names": catalogue.numeric_property_names(),
        "catalogue:recent_property_names": catalogue.recent_property_names(),
        "catalogue:top_events": [[t.name, t.count] for t in catalogue.top_events(start=START)],
        "catalogue:volume_by_service": [[t.name, t.count] for t in catalogue.volume_by_service(start=START)],
        "catalogue:daily_active_users": dau.as_json(),
    }


# --- the same answers, brute force in Python from the raw events -------------------------------------------

SUMMABLE = 1e15


def raw_rows() -> list[dict]:
    """Every aggregated raw event, as plain values."""
    from apps.ingest.models import RawEvent

    fields = ("event", "service", "stage", "user_id", "timestamp", "properties")
    return [dict(zip(fields, row, strict=True)) for row in RawEvent.objects.aggregated().values_list(*fields)]


def property_text(properties: dict, name: str) -> str | None:
    """A property's text as a breakdown groups by it: numbers as PostgreSQL's jsonb writes them."""
    from decimal import Decimal

    if not isinstance(properties, dict) or name not in properties:
        return None
    value = properties[name]
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = format(Decimal(json.dumps(value)), "f")
        return text[1:] if text.startswith("-") and not text.strip("-0.") else text
    if isinstance(value, str):
        return value
    return json.dumps(value)  # objects and arrays: not compared


def number(properties: dict, name: str) -> float | None:
    value = properties.get(name) if isinstance(properties, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if abs(value) <= SUMMABLE else None


def _floor(moment: datetime, interval: str) -> datetime:
    from apps.metrics import buckets

    return buckets.floor(moment, interval)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _filters_keep(e: dict, filters: list[str]) -> bool:
    for raw in filters:
        name, _, value = raw.partition("=")
        if property_text(e["properties"], name.strip()) != value.strip()[:500]:
            return False
    return True


def brute_series(rows: list[dict], p: dict) -> dict:
    from apps.metrics.buckets import STEP

    events = [e.strip() for e in p["event"].split(",")]
    interval, top = p.get("interval", "day"), int(p.get("top", 5))
    kind, _, prop = p.get("measure", "count").partition(":")
    start, end = _floor(_parse_time(p["from"]), interval), _parse_time(p["to"])
    end = end if _floor(end, interval) == end else _floor(end, interval) + STEP[interval]
    breakdown = p.get("breakdown", "") or ("event" if len(events) > 1 else "")
    starts = []
    moment = start
    while moment < end:
        starts.append(moment)
        moment += STEP[interval]
    cells: dict = {}  # group -> bucket -> [count, sum, numbers, users]
    for e in rows:
        if e["event"] not in events or not start <= e["timestamp"] < end:
            continue
        if not _filters_keep(e, p.get("filter", [])):
            continue
        if breakdown.startswith("prop:"):
            group = property_text(e["properties"], breakdown[5:])  # None: the absent group
        else:
            group = e[breakdown] if breakdown else "total"
        cell = cells.setdefault(group, {}).setdefault(_floor(e["timestamp"], interval), [0, 0.0, 0, set()])
        cell[0] += 1
        value = number(e["properties"], prop) if prop else None
        if value is not None:
            cell[1] += value
            cell[2] += 1
        if e["user_id"]:
            cell[3].add(e["user_id"])

    def values(by_bucket: dict) -> list:
        out = []
        for b in starts:
            count, total, numbers, users = by_bucket.get(b, (0, 0.0, 0, set()))
            out.append(
                {"count": count, "unique_users": len(users), "sum": total}.get(
                    kind, total / numbers if numbers else None
                )
            )
        return out

    def rank(group: str) -> float:
        by_bucket = cells[group].values()
        index = {"count": 0, "sum": 1, "avg": 2}.get(kind)
        return sum(len(c[3]) if index is None else c[index] for c in by_bucket)

    if not breakdown:
        return {"=total": values(cells.get("total", {}))}
    ranked = sorted(cells, key=lambda g: (-rank(g), g is None, g or ""))  # the absent group last on a tie
    out = {("(absent)" if g is None else "=" + g): values(cells[g]) for g in ranked[:top]}
    if len(ranked) > top:
        rest: dict = {}
        for g in ranked[top:]:
            for b, (count, total, numbers, users) in cells[g].items():
                cell = rest.setdefault(b, [0, 0.0, 0, set()])
                cell[0] += count
                cell[1] += total
                cell[2] += numbers
                cell[3] |= users
        out["(rest)"] = values(rest)
    return out


def series_as_compared(answer: dict) -> dict:
    """An API series answer as brute_series returns it (current period only)."""
    return {
        ("(rest)" if s["kind"] == "rest" else "(absent)" if s["absent"] else "=" + s["name"]): [
            point["v"] for point in s["points"]
        ]
        for s in answer["series"]
        if s["kind"] != "previous"
    }


def _analysis_rows(rows: list[dict], p: dict, names: tuple, start: datetime, end: datetime) -> list[dict]:
    out = []
    for e in rows:
        if not e["user_id"] or e["event"] not in names or not start <= e["timestamp"] < end:
            continue
        if p.get("service") and e["service"] != p["service"] or p.get("stage") and e["stage"] != p["stage"]:
            continue
        if not _filters_keep(e, [p["filter"]] if "filter" in p else []):
            continue
        out.append(e)
    return sorted(out, key=lambda e: (e["user_id"], e["timestamp"]))


def brute_funnel_paths(rows: list[dict], p: dict) -> dict:
    """{user: (breakdown value, [time of each step or None])}, as the README says."""
    steps = tuple(s.strip() for s in p["steps"].split(","))
    window = timedelta(seconds=int(p.get("window", 86400)))
    start, end = _parse_time(p["from"]), _parse_time(p["to"])
    breakdown = p.get("breakdown", "")
    by_user: dict = {}
    for e in _analysis_rows(rows, p, steps, start, end):
        by_user.setdefault(e["user_id"], []).append(e)
    paths = {}
    for user, events in by_user.items():
        firsts = [e for e in events if e["event"] == steps[0]]
        if not firsts:
            continue
        t1 = firsts[0]["timestamp"]
        value = None
        if breakdown:
            values = []
            for e in firsts:
                if e["timestamp"] != t1:
                    continue
                if breakdown.startswith("prop:"):
                    values.append(property_text(e["properties"], breakdown[5:]))
                else:
                    values.append(e[breakdown])
            # The smallest value present; None (absent) only when none of them has the property.
            value = min((v for v in values if v is not None), default=None)
        times = [t1]
        for name in steps[1:]:
            match = next(
                (
                    e["timestamp"]
                    for e in events
                    if e["event"] == name and times[-1] < e["timestamp"] <= t1 + window
                ),
                None,
            )
            if match is None:
                break
            times.append(match)
        paths[user] = (value, times + [None] * (len(steps) - len(times)))
    return paths


def brute_funnel(rows: list[dict], p: dict) -> dict:
    import statistics

    steps = tuple(s.strip() for s in p["steps"].split(","))
    paths = brute_funnel_paths(rows, p)

    def figures(selected) -> list[dict]:
        counts = [sum(1 for _, t in selected if t[k] is not None) for k in range(len(steps))]
        out = []
        for k, name in enumerate(steps):
            waits = [(t[k] - t[k - 1]).total_seconds() for _, t in selected if k and t[k] is not None]
            previous = counts[k - 1] if k else counts[0]
            out.append(
                {
                    "event": name,
                    "count": counts[k],
                    "conversion": round(counts[k] / counts[0], 6) if counts[0] else None,
                    "conversion_from_previous": round(counts[k] / previous, 6) if previous else None,
                    "median_seconds": round(statistics.median(waits), 3) if waits else None,
                }
            )
        return out

    answer: dict = {"steps": figures(list(paths.values()))}
    if p.get("breakdown"):
        groups: dict = {}
        for value, times in paths.values():
            groups.setdefault(value, []).append((value, times))
        ranked = sorted(groups, key=lambda g: (-len(groups[g]), g is None, g or ""))
        top = int(p.get("top", 10))
        answer["groups"] = [
            {
                "name": "(none)" if g is None else g,
                "kind": "value",
                "absent": g is None,
                "steps": figures(groups[g]),
            }
            for g in ranked[:top]
        ]
        answer["other_groups"] = max(len(ranked) - top, 0)
        if not answer["groups"] and not answer["other_groups"]:
            del answer["groups"], answer["other_groups"]
    return answer


def brute_retention(rows: list[dict], p: dict) -> dict:
    from apps.metrics.buckets import STEP

    interval = p.get("interval", "day")
    start = _floor(_parse_time(p["from"]), interval)
    end = _parse_time(p["to"])
    end = end if _floor(end, interval) == end else _floor(end, interval) + STEP[interval]
    names = (p["start_event"], p["return_event"])
    firsts: dict = {}
    returns: dict = {}
    for e in _analysis_rows(rows, p, names, start, end):
        if e["event"] == p["start_event"] and e["user_id"] not in firsts:
            firsts[e["user_id"]] = e["timestamp"]
    for e in _analysis_rows(rows, p, names, start, end):
        first = firsts.get(e["user_id"])
        if e["event"] == p["return_event"] and first is not None and e["timestamp"] > first:
            k = (_floor(e["timestamp"], interval) - _floor(first, interval)) // STEP[interval]
            returns.setdefault(e["user_id"], set()).add(k)
    cohorts = []
    moment = start
    n = (end - start) // STEP[interval]
    for index in range(n):
        members = [u for u, t in firsts.items() if _floor(t, interval) == moment]
        size = len(members)
        values = [sum(1 for u in members if k in returns.get(u, ())) for k in range(n - index)]
        cohorts.append(
            {
                "start": moment.isoformat(),
                "size": size,
                "values": values,
                "percentages": [round(100 * v / size, 2) if size else None for v in values],
            }
        )
        moment += STEP[interval]
    return {"interval": interval, "cohorts": cohorts}


def brute_users(rows: list[dict], p: dict) -> list:
    """[(user, count, first, last)] of the page the parameters ask for."""
    start, end = _parse_time(p["from"]), _parse_time(p["to"])
    limit, offset = int(p.get("limit", 50)), int(p.get("offset", 0))
    if "steps" in p:
        step, outcome = int(p["step"]), p.get("outcome", "converted")
        paths = brute_funnel_paths(rows, {"window": 86400, **p})
        among = {
            u
            for u, (value, t) in paths.items()
            if ("group" not in p or value == p["group"])
            and ("absent" not in p or value is None)
            and (t[step - 1] is not None if outcome == "converted" else t[step - 2] and t[step - 1] is None)
        }
        steps = [s.strip() for s in p["steps"].split(",")]
        name = steps[step - 1 if outcome == "converted" else step - 2]
        selected = [e for e in _analysis_rows(rows, p, (name,), start, end) if e["user_id"] in among]
    else:
        events = [e.strip() for e in p["event"].split(",")] if "event" in p else None
        breakdown = p.get("breakdown", "")
        selected = []
        for e in rows:
            if not start <= e["timestamp"] < end or (events and e["event"] not in events) or not e["user_id"]:
                continue
            if not _filters_keep(e, [p["filter"]] if "filter" in p else []):
                continue
            if breakdown:
                if breakdown.startswith("prop:"):
                    group = property_text(e["properties"], breakdown[5:])  # None: the absent group
                else:
                    group = e[breakdown]
                if "value" in p and group != p["value"]:
                    continue
                if "absent" in p and group is not None:
                    continue
                if p.get("rest") == "true" and (
                    group in p.get("exclude", []) or (group is None and "exclude_absent" in p)
                ):
                    continue
            selected.append(e)
    users: dict = {}
    for e in selected:
        count, first, last = users.get(e["user_id"], (0, e["timestamp"], e["timestamp"]))
        users[e["user_id"]] = (count + 1, min(first, e["timestamp"]), max(last, e["timestamp"]))
    ranked = sorted(users.items(), key=lambda item: (-item[1][0], item[0]))
    return [(u, n, f.isoformat(), t.isoformat()) for u, (n, f, t) in ranked[offset : offset + limit]]


def brute_answer(rows: list[dict], key: str):
    """The brute-force answer of a grid request, in the form `compared_form` gives an API answer."""
    path, _, text = key.partition("?")
    p = json.loads(text)
    if path == "series":
        return brute_series(rows, p)
    if path == "funnel":
        return brute_funnel(rows, p)
    if path == "retention":
        return brute_retention(rows, p)
    if path == "users":
        return brute_users(rows, p)
    raise ValueError(path)


def compared_form(key: str, answer):
    path = key.partition("?")[0]
    if path == "series":
        return series_as_compared(answer)
    if path == "users":
        return [(u["user_id"], u["count"], u["first"], u["last"]) for u in answer["users"]]
    return answer


def brute_mismatches(got: dict) -> list[dict]:
    """The answers of `got` (this database's) that differ from the brute-force ones (sums: beyond 1e-9)."""
    rows = raw_rows()
    out = []
    for key, answer in got.items():
        if key.startswith("catalogue:") or "status" in answer:
            continue
        expected = json.loads(json.dumps(brute_answer(rows, key), default=str))
        actual = json.loads(json.dumps(compared_form(key, answer), default=str))
        if not close(expected, actual):
            out.append({"key": key, "expected": expected, "actual": actual})
    return out


def close(a, b) -> bool:
    """Equal, floats within 1e-9 (sums of the same numbers in another order differ in the last bits)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def differences(a: dict, b: dict) -> list[str]:
    """The requests whose answers differ between two databases' answers (unique users' `estimate` aside)."""

    def without_estimates(answer):
        if isinstance(answer, dict) and "series" in answer:
            return {**answer, "series": [{**s, "estimate": None} for s in answer["series"]]}
        if isinstance(answer, dict) and "estimate" in answer:
            return {**answer, "estimate": None}
        return answer

    keys = sorted(set(a) | set(b))
    return [
        k
        for k in keys
        if k not in a or k not in b or not close(without_estimates(a[k]), without_estimates(b[k]))
    ]


if __name__ == "__main__":  # python -m tests.metrics.backends_grid <out.json> [--small]: load, answer
    import sys

    import django

    django.setup()
    from django.core.management import call_command

    small = "--small" in sys.argv
    call_command("migrate", verbosity=0)
    load(objects=not small)
    got = answers(small)
    with open(sys.argv[1], "w") as f:
        json.dump({"answers": got, "brute_mismatches": brute_mismatches(got)}, f, ensure_ascii=False)
