"""PostgreSQL URLs that name several servers, as libpq's multi-host connection strings do.

On a replicated cluster the API nodes list every database node,
``postgresql://user:pw@db1:5432,db2:5432,db3:5432/ledger?target_session_attrs=read-write``,
and libpq tries them in order and keeps the first that matches ``target_session_attrs``
(``read-write``: the primary; ``prefer-standby``: a replica if one answers). Every new
connection makes that choice again, so once the pool has dropped the connections to a dead
primary, new ones find the promoted node without a restart. ``urlsplit`` cannot read such a
netloc (its ``port`` raises), hence this parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")


class MultiHostUrlError(ValueError):
    """Raised when a PostgreSQL URL cannot be read; the message never echoes a password."""


@dataclass(frozen=True)
class PostgresUrl:
    """The parts of a (possibly multi-host) PostgreSQL URL, in libpq's comma-list form."""

    hosts: str
    ports: str
    dbname: str
    user: str
    password: str
    schema: str
    target_session_attrs: str

    @property
    def where(self) -> str:
        """Printable: the servers and the database, without credentials."""
        pairs = zip(self.hosts.split(","), self.ports.split(","), strict=True)
        servers = ",".join(f"{host}:{port}" for host, port in pairs)
        return f"{servers}/{self.dbname}"

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` (empty values left out)."""
        kwargs = {
            "host": self.hosts,
            "port": self.ports,
            "dbname": self.dbname,
            "user": self.user,
            "password": self.password or None,
        }
        if self.target_session_attrs:
            kwargs["target_session_attrs"] = self.target_session_attrs
        return kwargs


def parse_postgres_url(url: str) -> PostgresUrl:
    """Read ``postgresql://user:pw@host[:port][,host[:port]...]/db[?schema=&target_session_attrs=]``."""
    parts = urlsplit(url)
    userinfo, _, servers = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    hosts: list[str] = []
    ports: list[str] = []
    for server in (servers or "127.0.0.1").split(","):
        host, port = _host_and_port(server)
        hosts.append(host or "127.0.0.1")
        ports.append(port or "5432")
    query = parse_qs(parts.query)
    attrs = query.get("target_session_attrs", [""])[0]
    if attrs and attrs not in SESSION_ATTRS:
        msg = f"target_session_attrs must be one of {', '.join(SESSION_ATTRS)}"
        raise MultiHostUrlError(msg)
    return PostgresUrl(
        hosts=",".join(hosts),
        ports=",".join(ports),
        dbname=unquote(parts.path.lstrip("/")) or "postgres",
        user=unquote(user or "postgres"),
        password=unquote(password),
        schema=query.get("schema", [""])[0],
        target_session_attrs=attrs,
    )


def _host_and_port(server: str) -> tuple[str, str]:
    if server.startswith("["):  # an IPv6 literal, [::1]:5432
        host, _, rest = server[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = server.partition(":")
    if port and not port.isdigit():
        msg = f"bad port in the database URL: {port!r}"
        raise MultiHostUrlError(msg)
    return unquote(host), port


# A primary whose machine vanishes sends no FIN: without these, a request in flight on it
# would wait for the kernel's retransmissions (minutes). With them the connection fails
# within about ten seconds and the request answers 503.
CLUSTER_TCP = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


def target_writable(datastore: Any, attrs: str) -> None:
    """Make every connection a PostgreSQL datastore's pool opens use ``attrs``, and notice a
    vanished server within seconds (``CLUSTER_TCP``).

    eventsourcing builds the pool from host and port alone; the pool reads its ``kwargs``
    at each connect (and the outage hardening copies them), so adding the keys before the
    first connection is enough.
    """
    if attrs:
        pool = getattr(datastore, "pool", None)
        kwargs = getattr(pool, "kwargs", None)
        if isinstance(kwargs, dict):
            kwargs["target_session_attrs"] = attrs
            kwargs.update(CLUSTER_TCP)


def replace_all_after_failover(datastore: Any) -> None:
    """When the pool finds one idle connection dead, check and replace all of them at once.

    A failover kills every connection to the old primary together. psycopg_pool's getconn
    checks idle connections one at a time and sleeps with a growing backoff (1 s, 2 s,
    4 s...) after each dead one, so a pool of ten dead connections outlasts the request's
    wait and answers 503 for many seconds after the new primary is up. ``pool.check()``
    (public) discards every broken idle connection and opens replacements, which libpq
    points at the new primary; the next idle connection handed out is then a live one.
    The check is wrapped where the pool keeps it (``_check``, set from its ``check``
    argument), after the outage hardening has built the pool.
    """
    pool = getattr(datastore, "pool", None)
    inner = getattr(pool, "_check", None)
    if pool is None or inner is None:
        return

    def check(connection: Any) -> None:
        try:
            inner(connection)
        except Exception:
            pool.check()
            raise

    pool._check = check
