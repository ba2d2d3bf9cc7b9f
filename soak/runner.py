"""One soak run from start to finish: services up, traffic on, faults in turn, reconciliation, cleanup."""

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis
from elasticsearch import Elasticsearch

from .config import SoakConfig
from .faults import (
    ElasticsearchOutage,
    FaultContext,
    FaultRecord,
    flush_redis,
    kill_worker_mid_chunk,
    restart_postgresql,
    restart_redis,
)
from .instances import InstanceSet
from .processes import Child, WorkerPool, start_beat, start_portal
from .reconcile import Reconciliation, claim_ledger_install, quick_pending, reconcile
from .report import Report
from .traffic import Ledger, SyntheticService, Traffic

DATABASE = "skywatch_soak"
INDEX_PREFIX = "soak-obs-events"
STAGE = "soak"
# Variables of the caller's shell that would point the soak's processes elsewhere.
_FOREIGN_ENV = (
    "CACHE_URL",
    "CELERY_RESULT_BACKEND",
    "OBSERVATORY_URL",
    "OBSERVATORY_API_KEY",
    "ELASTICSEARCH_API_KEY",
    "ELASTICSEARCH_CA_CERTS",
    "PIPELINE_CHUNK_SIZE",
    "PIPELINE_MAX_ATTEMPTS",
)


class Run:
    """The state of one run, so cleanup can stop exactly what was started."""

    def __init__(self, config: SoakConfig, artifacts: Path, say: Callable[[str], None]) -> None:
        self.config = config
        self.artifacts = artifacts
        self._t0 = time.monotonic()
        self._say = say
        self.instances = InstanceSet.named(config.instances, log_path=artifacts / "services.log")
        self.portal: Child | None = None
        self.beat: Child | None = None
        self.workers: WorkerPool | None = None
        self.traffic: Traffic | None = None
        self.timings: dict[str, float] = {}

    def clock(self) -> float:
        return time.monotonic() - self._t0

    def say(self, message: str) -> None:
        self._say(f"[soak +{self.clock():6.1f}s] {message}")

    def env(self) -> dict[str, str]:
        """Return the environment of every portal process (and of this one, for the ORM)."""
        env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
        env.update(
            DJANGO_SETTINGS_MODULE="skywatch_portal.settings",
            DATABASE_URL=self.instances.database_url(DATABASE),
            CELERY_BROKER_URL=self.instances.broker_url(0),
            ELASTICSEARCH_URL=self.instances.es_url,
            ELASTICSEARCH_INDEX_PREFIX=INDEX_PREFIX,
            PIPELINE_SWEEP_INTERVAL_SECONDS=str(self.config.sweep_interval),
            PIPELINE_SWEEP_GRACE_SECONDS=str(self.config.sweep_grace),
            INGEST_NODE="soak",
            LOG_LEVEL="INFO",
        )
        return env

    def es(self) -> Elasticsearch:
        return Elasticsearch(self.instances.es_url, request_timeout=30)

    # -- phases ----------------------------------------------------------------------------------

    def start_services(self) -> None:
        self.say(f"starting the soak's own services (logs: {self.instances.log_path})")
        self.timings["start services"] = self.instances.start()
        self.say(
            f"PostgreSQL 15/{self.instances.pg_cluster} :{self.instances.pg_port}, Redis :"
            f"{self.instances.redis_port}, Elasticsearch :{self.instances.es_port} up"
        )

    def prepare_stores(self) -> None:
        """Start from empty stores: a new database, no indices, an empty broker."""
        started = time.monotonic()
        with psycopg.connect(self.instances.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DATABASE}")
        env = self.env()
        for name in _FOREIGN_ENV:
            os.environ.pop(name, None)
        os.environ.update(env)  # this process uses the ORM too (keys, reconciliation)
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        claim_ledger_install()  # every committed claim recorded, so none can go twice unseen
        es = self.es()
        es.options(ignore_status=404).indices.delete(index=f"{INDEX_PREFIX}-*", expand_wildcards="all")
        es.options(ignore_status=404).indices.delete_index_template(name=INDEX_PREFIX)
        redis.Redis(port=self.instances.redis_port).flushall()
        self.timings["prepare stores"] = time.monotonic() - started

    def start_processes(self) -> None:
        started = time.monotonic()
        env = self.env()
        self.portal, self.url = start_portal(env, self.artifacts, workers=self.config.portal_workers)
        self.workers = WorkerPool(
            env, self.artifacts, lambda app: self.instances.database_url(DATABASE, application_name=app)
        )
        for _ in range(self.config.workers):
            self.workers.start()
        self.beat = start_beat(env, self.artifacts)
        self.timings["start portal, workers, beat"] = time.monotonic() - started
        self.say(
            f"portal {self.url}, {self.config.workers} workers, beat every {self.config.sweep_interval} s"
        )

    def start_traffic(self) -> None:
        from apps.accounts.actors import Actor
        from apps.ingest.services import service_key_create

        self.ledger = Ledger()
        services = []
        for i in range(1, self.config.services + 1):
            name = f"soak-svc-{i:02d}"
            _, key = service_key_create(service_name=name, stage=STAGE, actor=Actor.command("soak"))
            services.append(SyntheticService(name, key, self.url, self.ledger, self.config.flush_interval))
        self.traffic = Traffic(
            services,
            self.ledger,
            requests_per_second=self.config.requests_per_second,
            resend_every=self.config.resend_every,
            seed=self.config.seed,
        )
        self.traffic_started = self.clock()
        self.traffic.start()
        self.say(f"traffic: {self.config.services} services, {self.config.requests_per_second} requests/s")

    def faults(self) -> list[FaultRecord]:
        """Break things in turn, with steady traffic before, between and after."""
        from apps.ingest.models import AggregationBacklog, IndexBacklog, RawEvent
        from apps.metrics.models import RollupCount

        ctx = FaultContext(
            instances=self.instances,
            workers=self.workers,
            database=DATABASE,
            tables={
                "raw": RawEvent._meta.db_table,
                "index_backlog": IndexBacklog._meta.db_table,
                "aggregation_backlog": AggregationBacklog._meta.db_table,
                "rollup_count": RollupCount._meta.db_table,
            },
            clock=self.clock,
            say=self.say,
            portal_log=self.portal.log_path,
        )
        cfg = self.config
        names = [s.name for s in self.traffic.services]
        es = ElasticsearchOutage(ctx, outage=cfg.es_outage)
        es_pending = False
        records: list[FaultRecord] = []

        def es_stop() -> None:
            nonlocal es_pending
            es.begin()
            es_pending = True
            if not cfg.es_start_in_background:
                wait_for_es()

        def wait_for_es() -> None:
            nonlocal es_pending
            if es_pending:
                records.append(es.end())
                es_pending = False
                self.say("Elasticsearch is back")

        # name -> (title, step, whether it runs services.sh, which waits while Elasticsearch starts)
        steps = {
            "worker_kill": (
                "kill a worker mid-chunk",
                lambda: kill_worker_mid_chunk(ctx, service=names[0], event="log"),
                False,
            ),
            "redis_restart": (
                f"restart Redis ({cfg.redis_outage:g} s down)",
                lambda: restart_redis(ctx, outage=cfg.redis_outage),
                True,
            ),
            "redis_flush": (
                "FLUSHALL the broker with a backlog queued",
                lambda: flush_redis(ctx, services=names),
                False,
            ),
            "es_stop": (f"stop Elasticsearch ({cfg.es_outage:g} s, then start)", es_stop, True),
            "pg_restart": (
                f"restart PostgreSQL ({cfg.pg_outage:g} s down)",
                lambda: restart_postgresql(ctx, outage=cfg.pg_outage),
                True,
            ),
        }
        self._sleep(cfg.warmup)
        for number, name in enumerate(cfg.order, start=1):
            title, step, uses_services = steps[name]
            if uses_services:
                wait_for_es()
            self.say(f"fault {number}/{len(cfg.order)}: {title}")
            began = self.clock()
            record = step()
            if record is not None:
                records.append(record)
            self.say(f"fault {number} done ({self.clock() - began:.1f} s)")
            if number < len(cfg.order):
                self._sleep(cfg.calm)
        wait_for_es()
        records.sort(key=lambda r: r.started)
        self._sleep(cfg.tail)
        return records

    def stop_traffic(self) -> None:
        self.traffic.stop()
        self.traffic_seconds = self.clock() - self.traffic_started
        self.say(f"traffic stopped after {self.traffic.requests} requests; clients flushing")
        if not self.traffic.flush(timeout=self.config.converge_timeout):
            self.say("some clients still had events pending when the flush timed out")

    def converge(self, last_fault_end: float) -> tuple[Reconciliation, float | None]:
        """Poll until every store agrees with the ledger, or the limit passes; return the figures."""
        ledger = self.ledger.snapshot()
        es = self.es()
        alias = INDEX_PREFIX
        deadline = last_fault_end + self.config.converge_timeout
        last_note = 0.0
        while True:
            try:
                stored, unaggregated, unindexed, documents = quick_pending(es=es, alias=alias)
                if unaggregated == unindexed == 0 and documents == stored >= len(ledger.acknowledged):
                    figures = reconcile(ledger=ledger, es=es, alias=alias)
                    if figures.agree and figures.lost == 0:
                        return figures, self.clock() - last_fault_end
                if self.clock() - last_note > 10:
                    last_note = self.clock()
                    self.say(
                        f"converging: {stored} stored, {unaggregated} to aggregate, "
                        f"{unindexed} to index, {documents} documents"
                    )
            except Exception as exc:  # a store still coming back: poll again, but say so
                self.say(f"not yet: {type(exc).__name__}: {exc}")
            if self.clock() > deadline:
                return reconcile(ledger=ledger, es=es, alias=alias), None
            time.sleep(2)

    def cleanup(self, keep_services: bool) -> None:
        if self.traffic is not None:
            try:
                self.traffic.stop()
            except RuntimeError:
                pass
        for child in (self.beat, self.portal):
            if child is not None:
                child.stop()
        if self.workers is not None:
            self.workers.stop_all()
        if keep_services:
            self.say("leaving the soak's services running (--keep-services)")
        else:
            self.timings["stop services"] = self.instances.stop()
            self.say("the soak's services are stopped")

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)
        if self.traffic is not None and self.traffic.error is not None:
            raise RuntimeError("the traffic thread failed") from self.traffic.error


def run(config: SoakConfig, *, artifacts: Path, keep_services: bool, say: Callable[[str], None]) -> Report:
    """Run the soak once and return its report; the soak's own services are stopped unless kept."""
    if artifacts.exists():
        shutil.rmtree(artifacts)
    artifacts.mkdir(parents=True)
    soak = Run(config, artifacts, say)
    try:
        soak.start_services()
        soak.prepare_stores()
        soak.start_processes()
        soak.start_traffic()
        faults = soak.faults()
        soak.stop_traffic()
        last_fault_end = max(fault.ended for fault in faults)
        figures, time_to_converge = soak.converge(last_fault_end)
        soak.timings["run"] = soak.clock()
        soak.say("converged" if time_to_converge is not None else "did NOT converge")
    finally:
        soak.cleanup(keep_services)
    sent = figures.sent
    client = soak.traffic.client_stats()
    return Report(
        mode=config.mode,
        config=config.as_dict(),
        figures=figures,
        faults=faults,
        converged=time_to_converge is not None,
        time_to_converge=time_to_converge,
        converge_limit=config.converge_timeout,
        timings=soak.timings,
        traffic={
            "services": config.services,
            "requests": soak.traffic.requests,
            "seconds": round(soak.traffic_seconds, 1),
            "events_per_second": round(sent / soak.traffic_seconds, 1) if soak.traffic_seconds else 0,
            "client_retries": client["retries"],
            "duplicates_answered": client["duplicates"],
            "client_failed_batches": client["failed_batches"],
        },
        artifacts=str(artifacts),
    )
