"""The soak's own PostgreSQL cluster, Redis and Elasticsearch, driven through scripts/services.sh.

Faults stop and start these, so they must never be the default instance set that `make test`, `make run`
and a developer's portal use: other ports, another PostgreSQL cluster, another cache dir (Redis dir,
Elasticsearch data, the services lock).
"""

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVICES_SH = REPO / "scripts" / "services.sh"

# The default instance set of scripts/services.sh: nothing here may ever point at it.
_DEFAULT_PORTS = {5432, 6379, 9200, 9300}
DB_USER = DB_PASSWORD = "skywatch"


class ServicesError(RuntimeError):
    """scripts/services.sh failed; the message holds the end of its output."""


@dataclass(frozen=True)
class InstanceSet:
    """One isolated set of backing services and how to reach them."""

    cache_dir: Path = REPO / ".cache" / "soak"
    pg_cluster: str = "soak"
    pg_port: int = 5442
    redis_port: int = 6389
    es_port: int = 9210
    es_transport_port: int = 9310
    # Beside the default node's 1 GB: a small heap is plenty for a few ten thousand documents.
    es_java_opts: str = "-Xms256m -Xmx512m"
    log_path: Path | None = None  # services.sh progress goes here (stderr when None)

    @classmethod
    def named(cls, name: str, log_path: Path | None = None) -> "InstanceSet":
        """Return the instance set of a soak profile: `soak` (make soak) or `soak-short` (make test).

        Two sets, so the short soak inside `make test` never collides with a `make soak` running beside it.
        """
        offset = {"soak": 0, "soak-short": 1}[name]
        return cls(
            cache_dir=REPO / ".cache" / name,
            pg_cluster=name.replace("-", "_"),
            pg_port=5442 + offset,
            redis_port=6389 + offset,
            es_port=9210 + offset,
            es_transport_port=9310 + offset,
            log_path=log_path,
        )

    def __post_init__(self) -> None:
        ports = {self.pg_port, self.redis_port, self.es_port, self.es_transport_port}
        if ports & _DEFAULT_PORTS or self.pg_cluster == "main" or self.cache_dir == REPO / ".cache":
            raise ValueError("the soak must not run on the default instance set (ports, cluster, cache)")

    # -- addresses -------------------------------------------------------------------------------

    def database_url(self, name: str, **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        url = f"postgres://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.pg_port}/{name}"
        return f"{url}?{query}" if query else url

    def conninfo(self, name: str) -> str:
        """Return a libpq connection string for psycopg (short timeout: faults make the server vanish)."""
        return (
            f"host=127.0.0.1 port={self.pg_port} dbname={name} user={DB_USER} password={DB_PASSWORD}"
            " connect_timeout=3"
        )

    def broker_url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/{db}"

    @property
    def es_url(self) -> str:
        return f"http://127.0.0.1:{self.es_port}"

    # -- control ---------------------------------------------------------------------------------

    def script_env(self) -> dict[str, str]:
        """Return the environment that points scripts/services.sh at this instance set."""
        env = dict(os.environ)
        env.update(
            SKYWATCH_CACHE=str(self.cache_dir),
            SKYWATCH_PG_CLUSTER=self.pg_cluster,
            SKYWATCH_PG_PORT=str(self.pg_port),
            SKYWATCH_REDIS_PORT=str(self.redis_port),
            SKYWATCH_ES_PORT=str(self.es_port),
            SKYWATCH_ES_TRANSPORT_PORT=str(self.es_transport_port),
            ES_JAVA_OPTS=self.es_java_opts,
        )
        return env

    def run(self, command: str, timeout: float = 600) -> float:
        """Run `scripts/services.sh <command>` on this set; return how long it took (seconds)."""
        started = time.monotonic()
        log = open(self.log_path, "ab") if self.log_path else None  # closed below
        try:
            if log:
                log.write(f"\n== {time.strftime('%H:%M:%S')} services.sh {command} ==\n".encode())
                log.flush()
            result = subprocess.run(
                [str(SERVICES_SH), command],
                env=self.script_env(),
                stdout=subprocess.DEVNULL,  # the export lines; the addresses are known here
                stderr=log or None,
                timeout=timeout,
                check=False,
            )
        finally:
            if log:
                log.write(
                    f"== {time.strftime('%H:%M:%S')} ({time.monotonic() - started:.1f} s) ==\n".encode()
                )
                log.close()
        if result.returncode != 0:
            tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path else ""
            raise ServicesError(f"scripts/services.sh {command} exited {result.returncode}\n{tail}")
        return time.monotonic() - started

    def start(self) -> float:
        return self.run("start")

    def stop(self) -> float:
        return self.run("stop")
