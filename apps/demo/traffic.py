"""Demo traffic: days of SkyWatch-like events and log lines, made deterministically from one seed.

Plain data in the shapes services really send (the lessons' `userId` / `time` log records, `obs.track`
metrics, a few spans), so that `seed_demo` can put it through conform and the pipeline like any traffic.
No Django here: the same seed gives the same items, whatever the database.
"""

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

STAGE = "prod"
# The request path of a download, hop by hop: one correlation ID crosses all four.
GATEWAY, SEARCH, DOWNLOAD, WORKER = "gateway", "search-api", "download-server", "download-worker"
HOP_SERVICES = (GATEWAY, SEARCH, DOWNLOAD, WORKER)
FORECAST, SHIPS = "crop-forecast", "ship-tracking"
SERVICES = (*HOP_SERVICES, FORECAST, SHIPS)
# Older services that do not pass the correlation ID on: the share of their lines that carry none.
ID_DROP_RATE = {FORECAST: 1.0, SHIPS: 0.7}
# The funnel of the product: each step is a metric of the user who did it.
FUNNEL = ("search_made", "scene_viewed", "download_ordered", "download_completed")

REGIONS = ("eu-west", "us-midwest", "sa-cerrado", "africa-sahel", "asia-punjab", "au-murray")
CROPS = ("wheat", "maize", "soy", "rice", "cotton")
QUERIES = (
    "harbour rotterdam",
    "wheat kansas",
    "cloud free sentinel-2",
    "port of singapore",
    "maize parana",
    "iowa fields",
    "suez canal",
    "nile delta",
    "rice mekong",
    "deforestation para",
)
SATELLITES = ("sentinel-2a", "sentinel-2b", "landsat-8", "planetscope")
# Relative traffic by UTC hour: quiet nights, a working-day hump.
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 5, 7, 9, 10, 10, 9, 10, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
HOURS = tuple(range(24))

# The error spike: from 12:00 UTC on the bad day storage reads time out, until the fix is deployed at 17:40.
SPIKE_HOURS = (12, 18)
SPIKE_FAILURE_RATE = 0.7  # of downloads
SPIKE_SEARCH_FAILURE_RATE = 0.5  # of searches (the scene catalogue is on the same storage)
NORMAL_FAILURE_RATE = 0.03


@dataclass(frozen=True)
class DemoAnnotation:
    """A chart annotation the demo makes (a deploy), as data: who, what, when."""

    service: str
    text: str
    timestamp: datetime


@dataclass(frozen=True)
class DemoPlan:
    """What to generate: `days` days of traffic ending at `end` from `users` users, decided by `seed`."""

    seed: int
    days: int
    users: int
    end: datetime

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    @property
    def spike_day(self) -> datetime:
        """Midnight (UTC) of the day with the error spike: six days before the end (or the window's second
        day when it is shorter), so the charts show the days before and after it."""
        back = min(6, self.days - 1)
        return (self.end - timedelta(days=back)).replace(hour=0, minute=0, second=0, microsecond=0)

    @property
    def deploy(self) -> DemoAnnotation:
        """The deploy that ended the spike, 20 minutes before its last error hour ends."""
        fixed_at = self.spike_day + timedelta(hours=SPIKE_HOURS[1]) - timedelta(minutes=20)
        return DemoAnnotation(
            service=DOWNLOAD,
            text="deploy download-server 2.14.1: retry storage reads with backoff (fixes the timeouts)",
            timestamp=fixed_at,
        )


@dataclass(frozen=True)
class _User:
    user_id: str
    habit: str  # "daily", "weekly" or "casual"
    first_day: int  # index of the day of the first visit
    last_day: int  # after this day the user does not come back (churn)
    weekday: int  # the weekly user's day (0 = Monday)
    region: str


def demo_plan(*, seed: int, days: int, users: int, end: datetime) -> DemoPlan:
    """Return a plan; `end` is truncated to the minute so a plan is easy to repeat."""
    if days < 1 or users < 1:
        raise ValueError("days and users must be at least 1")
    return DemoPlan(
        seed=seed, days=days, users=users, end=end.astimezone(UTC).replace(second=0, microsecond=0)
    )


def demo_items(plan: DemoPlan) -> Iterator[tuple[str, dict]]:
    """Yield (service, item) for every event and log line of the plan, day by day, in a fixed order."""
    rng = random.Random(plan.seed)
    people = _users(rng, plan)
    first_midnight = datetime.combine(plan.start.date(), time(), tzinfo=UTC)
    calendar_days = (plan.end.date() - plan.start.date()).days + 1
    for day_index in range(calendar_days):
        midnight = first_midnight + timedelta(days=day_index)
        day = _Day(rng, plan, midnight)
        for person in people:
            for _ in range(_sessions(rng, person, day_index, midnight)):
                day.session(person, first=day_index == person.first_day)
        day.background()
        yield from day.items


def _users(rng: random.Random, plan: DemoPlan) -> list[_User]:
    calendar_days = (plan.end.date() - plan.start.date()).days + 1
    people = []
    for number in range(plan.users):
        habit = rng.choices(("daily", "weekly", "casual"), weights=(25, 35, 40))[0]
        # A third were users before the window opened; the others sign up over the period.
        first = rng.randrange(min(2, calendar_days)) if rng.random() < 0.35 else rng.randrange(calendar_days)
        mean_life = {"daily": 60.0, "weekly": 40.0, "casual": 6.0}[habit]
        last = first + int(rng.expovariate(1 / mean_life))
        people.append(
            _User(
                user_id=str(1000 + number),
                habit=habit,
                first_day=first,
                last_day=last,
                # A weekly user comes back on the weekday of their first visit.
                weekday=(plan.start.date() + timedelta(days=first)).weekday(),
                region=rng.choice(REGIONS),
            )
        )
    return people


def _sessions(rng: random.Random, person: _User, day_index: int, midnight: datetime) -> int:
    """How many visits a user makes on a day: their habit, the weekend, and whether they still come."""
    if day_index < person.first_day or day_index > person.last_day:
        return 0
    if day_index == person.first_day:
        return 1  # everyone counted in the demo has come at least once
    weekend = midnight.weekday() >= 5
    if person.habit == "daily":
        chance = 0.35 if weekend else 0.8
    elif person.habit == "weekly":
        chance = 0.85 if midnight.weekday() == person.weekday else 0.03
    else:
        chance = 0.08
    if rng.random() >= chance:
        return 0
    more = rng.random()
    return 3 if more < 0.1 else 2 if more < 0.45 else 1


class _Day:
    """One day's items, built session by session."""

    def __init__(self, rng: random.Random, plan: DemoPlan, midnight: datetime) -> None:
        self.rng, self.plan, self.midnight = rng, plan, midnight
        self.spike = midnight == plan.spike_day
        self.items: list[tuple[str, dict]] = []

    # --- building blocks -------------------------------------------------------------------------------
    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _span_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def _in_window(self, moment: datetime) -> bool:
        return self.plan.start <= moment <= self.plan.end

    def _add(self, service: str, item: dict, moment: datetime) -> None:
        if self._in_window(moment):
            self.items.append((service, item))

    def _log(
        self,
        service: str,
        moment: datetime,
        message: str,
        *,
        cid: str,
        user: str,
        level: str = "info",
        **extra,
    ) -> None:
        """A log line in the lessons' record shape: `userId`, `time` as epoch seconds in a string."""
        item = {
            "event_id": self._id(),
            "type": "log",
            "level": level,
            "message": message,
            "service": service,
            "time": f"{moment.timestamp():.3f}",
            **extra,
        }
        if user:
            item["userId"] = user
        if cid and not self._drops_id(service):
            item["correlationId"] = cid
        self._add(service, item, moment)

    def _metric(
        self, service: str, moment: datetime, name: str, *, cid: str, user: str, **properties
    ) -> None:
        """A metric as `observatory.Tracker.track` sends it."""
        item = {
            "event_id": self._id(),
            "event": name,
            "timestamp": moment.isoformat(),
            "properties": properties,
        }
        if user:
            item["user_id"] = user
        if cid and not self._drops_id(service):
            item["correlation_id"] = cid
        self._add(service, item, moment)

    def _span(
        self,
        service: str,
        moment: datetime,
        name: str,
        *,
        cid: str,
        span: str,
        parent: str,
        ms: float,
        user: str,
    ) -> None:
        item = {
            "event_id": self._id(),
            "type": "span",
            "event": name,
            "timestamp": moment.isoformat(),
            "correlation_id": cid,
            "user_id": user,  # as an OpenTelemetry span's enduser.id
            "span_id": span,
            "duration_ms": round(ms, 1),
        }
        if parent:
            item["parent_span_id"] = parent
        self._add(service, item, moment)

    def _drops_id(self, service: str) -> bool:
        rate = ID_DROP_RATE.get(service, 0.0)
        return rate > 0 and (rate >= 1 or self.rng.random() < rate)

    def _moment(self, *, in_window: bool = False) -> datetime:
        """A time of the day, busier in working hours; `in_window`: inside the plan's window if the day
        overlaps it enough to find one (the first and last days are partial)."""
        for _ in range(20 if in_window else 1):
            hour = self.rng.choices(HOURS, weights=HOUR_WEIGHTS)[0]
            moment = self.midnight + timedelta(hours=hour, seconds=self.rng.uniform(0, 3600))
            if self._in_window(moment):
                break
        return moment

    # --- a user's visit --------------------------------------------------------------------------------
    def session(self, person: _User, *, first: bool = False) -> None:
        """A visit: a search, maybe a scene, maybe an order that the worker fulfils (or fails). A user's
        first visit falls inside the window, so every user asked for is seen."""
        rng, user = self.rng, person.user_id
        cid = self._id()
        t = self._moment(in_window=first)
        query = rng.choice(QUERIES)
        if self._spiking(t) and rng.random() < SPIKE_SEARCH_FAILURE_RATE:
            self._failed_search(person, t, cid, query)
            return
        results = max(0, int(rng.gauss(40, 25)))
        took = rng.lognormvariate(4.5, 0.5)
        self._log(
            GATEWAY,
            t,
            f"GET /api/search?q={query} 200 ({took:.0f} ms)",
            cid=cid,
            user=user,
            path="/api/search",
            status=200,
        )
        self._metric(
            SEARCH,
            t + timedelta(milliseconds=took * 0.8),
            "search_made",
            cid=cid,
            user=user,
            query=query,
            n_results=results,
            region=person.region,
        )
        self._log(
            SEARCH,
            t + timedelta(milliseconds=took * 0.8),
            f"search {query!r}: {results} scenes",
            cid=cid,
            user=user,
            n_results=results,
        )
        if rng.random() < 0.2:  # some requests are traced as spans too
            root = self._span_id()
            self._span(GATEWAY, t, "GET /api/search", cid=cid, span=root, parent="", ms=took, user=user)
            self._span(
                SEARCH,
                t + timedelta(milliseconds=5),
                "search scenes",
                cid=cid,
                span=self._span_id(),
                parent=root,
                ms=took * 0.8,
                user=user,
            )
        if rng.random() < 0.15:
            self._forecast(person, t + timedelta(seconds=rng.uniform(5, 120)), cid)
        if rng.random() < 0.1:
            self._ships(person, t + timedelta(seconds=rng.uniform(5, 120)), cid)
        if results == 0 or rng.random() >= 0.62:
            return
        scene = f"{rng.getrandbits(24):06x}"
        t += timedelta(seconds=rng.uniform(3, 90))
        self._metric(
            SEARCH, t, "scene_viewed", cid=cid, user=user, scene_id=scene, satellite=rng.choice(SATELLITES)
        )
        if rng.random() >= 0.4:
            return
        t += timedelta(seconds=rng.uniform(10, 300))
        self._order(person, t, cid, scene)

    def _order(self, person: _User, t: datetime, cid: str, scene: str) -> None:
        rng, user = self.rng, person.user_id
        order = f"ord-{rng.getrandbits(32):08x}"
        size = int(rng.lognormvariate(7, 0.6))  # MB, the lessons' image_size
        self._log(GATEWAY, t, "POST /api/orders 202", cid=cid, user=user, path="/api/orders", status=202)
        self._metric(
            DOWNLOAD,
            t,
            "download_ordered",
            cid=cid,
            user=user,
            scene_id=scene,
            image_size=size,
            order_id=order,
        )
        self._log(DOWNLOAD, t, f"order {order} queued for scene {scene}", cid=cid, user=user, imgId=scene)
        t += timedelta(seconds=rng.uniform(1, 5))
        self._log(
            WORKER, t, f"fetching scene {scene} ({size} MB)", cid=cid, user=user, imgId=scene, level="debug"
        )
        seconds = size / rng.uniform(40, 120)
        if rng.random() < (SPIKE_FAILURE_RATE if self._spiking(t) else NORMAL_FAILURE_RATE):
            t += timedelta(seconds=30)
            self._log(
                WORKER,
                t,
                f"storage read timed out after 30 s for scene {scene}",
                cid=cid,
                user=user,
                imgId=scene,
                level="error",
                error="ReadTimeout",
            )
            self._metric(WORKER, t, "download_failed", cid=cid, user=user, scene_id=scene, reason="timeout")
            self._log(
                DOWNLOAD,
                t,
                f"order {order} failed: storage timeout",
                cid=cid,
                user=user,
                imgId=scene,
                level="error",
            )
            self._log(
                GATEWAY,
                t,
                f"GET /api/orders/{order} 502",
                cid=cid,
                user=user,
                level="error",
                path="/api/orders",
                status=502,
            )
            return
        t += timedelta(seconds=seconds)
        # The lessons' record, word for word in shape.
        self._log(WORKER, t, "Downloaded img", cid=cid, user=user, imgId=scene)
        self._metric(
            WORKER,
            t,
            "download_completed",
            cid=cid,
            user=user,
            scene_id=scene,
            image_size=size,
            seconds=round(seconds, 1),
        )

    def _spiking(self, moment: datetime) -> bool:
        """Whether storage is timing out at `moment`: the spike day, from its start hour to the deploy."""
        return self.spike and moment.hour >= SPIKE_HOURS[0] and moment < self.plan.deploy.timestamp

    def _failed_search(self, person: _User, t: datetime, cid: str, query: str) -> None:
        """A search during the outage: the catalogue read times out, the gateway answers 504."""
        user = person.user_id
        self._log(
            SEARCH,
            t + timedelta(seconds=10),
            f"search {query!r} failed: catalogue read timed out",
            cid=cid,
            user=user,
            level="error",
            error="ReadTimeout",
        )
        self._log(
            GATEWAY,
            t + timedelta(seconds=10),
            f"GET /api/search?q={query} 504",
            cid=cid,
            user=user,
            level="error",
            path="/api/search",
            status=504,
        )

    def _forecast(self, person: _User, t: datetime, cid: str) -> None:
        crop = self.rng.choice(CROPS)
        self._log(
            GATEWAY,
            t,
            f"GET /api/forecasts/{crop} 200",
            cid=cid,
            user=person.user_id,
            path="/api/forecasts",
            status=200,
        )
        self._metric(
            FORECAST, t, "forecast_viewed", cid=cid, user=person.user_id, crop=crop, region=person.region
        )
        self._log(FORECAST, t, f"forecast served: {crop} in {person.region}", cid=cid, user=person.user_id)

    def _ships(self, person: _User, t: datetime, cid: str) -> None:
        vessel = str(self.rng.randrange(200_000_000, 800_000_000))
        self._metric(SHIPS, t, "vessel_tracked", cid=cid, user=person.user_id, mmsi=vessel)
        self._log(SHIPS, t, f"track of vessel {vessel} sent", cid=cid, user=person.user_id, mmsi=vessel)

    # --- what runs without users ------------------------------------------------------------------------
    def background(self) -> None:
        """Nightly forecast runs per region and hourly ship-position ingests: jobs, no user, no request."""
        rng = self.rng
        for region in REGIONS:
            t = self.midnight + timedelta(hours=2, minutes=rng.uniform(0, 50))
            self._log(FORECAST, t, f"forecast run started for {region}", cid="", user="", region=region)
            took = rng.uniform(300, 1500)
            self._metric(
                FORECAST,
                t + timedelta(seconds=took),
                "forecast_run",
                cid="",
                user="",
                region=region,
                seconds=round(took),
                fields=rng.randrange(2_000, 40_000),
            )
        for hour in HOURS:
            t = self.midnight + timedelta(hours=hour, minutes=rng.uniform(0, 5))
            positions = rng.randrange(50_000, 120_000)
            self._metric(SHIPS, t, "positions_ingested", cid="", user="", positions=positions)
            if rng.random() < 0.04:
                self._log(SHIPS, t, "AIS feed lagging: 4 minutes behind", cid="", user="", level="warning")
