"""Django's PostgreSQL backend, whose health check asks the server only when something has arrived.

With CONN_HEALTH_CHECKS, Django checks a persistent connection before the first query of each request with
`SELECT 1`: one round trip, 0.3–0.5 ms here, on every API call (about a sixth of a trace read's own cost).
A connection the server has closed (a restart, `pg_terminate_backend`, an idle timeout) always says so on
its socket: the server's last message and the end of the stream arrive there. So an idle connection
whose socket has nothing to read is usable as it stands; only when something arrived is the server asked.
A connection lost without a word (a cut network) fails its next query as it would have failed `SELECT 1`.
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        if self.connection is None or self.connection.closed:
            return False
        pgconn = self.connection.pgconn
        if pgconn.status != pq.ConnStatus.OK:
            return False
        if pgconn.transaction_status == pq.TransactionStatus.IDLE and not _has_input(pgconn.socket):
            return True
        return super().is_usable()


def _has_input(fd: int) -> bool:
    """Whether the socket has something to read (or was closed), without waiting."""
    poller = select.poll()  # not select.select: its descriptors stop at 1024
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))
