"""The server-side functions the PostgreSQL recorder appends and seals with.

The chain heads are read, and seals written, by exactly one function each; every append
path calls them (the one-round-trip append function from inside the server, the careful
and the library's paths from the client), so there is one spelling of each.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.sql import SQL, Composed, Identifier

from infrastructure.audit.chain import CHAIN_TABLE

# Global head first, then each originator's head (NULL where it has no seal yet), in the
# order given, so callers can compare arrays.
CHAIN_HEADS_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}(originators text[])
RETURNS TABLE (originator_id text, hash text)
LANGUAGE sql STABLE AS $body$
    SELECT h.originator_id, h.hash FROM (
        SELECT NULL::text AS originator_id, 0::bigint AS n,
               (SELECT c.global_hash FROM {chain} c ORDER BY c.position DESC LIMIT 1) AS hash
        UNION ALL
        SELECT o.id, o.n,
               (SELECT c.session_hash FROM {chain} c WHERE c.originator_id = o.id
                ORDER BY c.originator_version DESC LIMIT 1)
        FROM unnest(originators) WITH ORDINALITY AS o(id, n)
    ) AS h ORDER BY h.n
$body$
"""

WRITE_SEALS_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}(
    positions bigint[], originators text[], versions bigint[],
    event_hashes text[], session_hashes text[], global_hashes text[]
) RETURNS void
LANGUAGE sql AS $body$
    INSERT INTO {chain} (position, originator_id, originator_version, event_hash,
                         session_hash, global_hash)
    SELECT * FROM unnest(positions, originators, versions, event_hashes, session_hashes,
                         global_hashes)
$body$
"""

# The guards of an append (aggregates it relied on, each at the version it must still
# have): the 1-based ordinals of those whose last recorded version is another.
STALE_GUARDS_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}(guard_ids {id_type}[], guard_versions bigint[])
RETURNS bigint[]
LANGUAGE sql STABLE AS $body$
    SELECT coalesce(array_agg(g.n ORDER BY g.n), '{{}}') FROM unnest(guard_ids, guard_versions)
        WITH ORDINALITY AS g(id, v, n)
    WHERE g.v IS DISTINCT FROM
        (SELECT max(e.originator_version) FROM {events} e WHERE e.originator_id = g.id)
$body$
"""

# (Processes of an earlier release call the overload without guards, which stays.)
APPEND_SEALED_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}(
    originators text[], expected_global text, expected_sessions text[],
    ids {id_type}[], versions bigint[], topics text[], states bytea[],
    seal_originators text[], event_hashes text[], session_hashes text[], global_hashes text[],
    guard_ids {id_type}[], guard_versions bigint[]
) RETURNS TABLE (ok boolean, g text, s text[], positions bigint[], stale bigint[])
LANGUAGE plpgsql AS $body$
DECLARE
    current_heads text[];
    inserted_positions bigint[];
    stale_guards bigint[];
BEGIN
    PERFORM set_config('lock_timeout', '{lock_timeout}s', true);
    -- The library's lock: positions are issued in commit order (see eventsourcing.postgres).
    LOCK TABLE {events} IN EXCLUSIVE MODE;
    NOTIFY {channel};
    stale_guards := {stale}(guard_ids, guard_versions);
    IF cardinality(stale_guards) > 0 THEN
        RETURN QUERY SELECT false, NULL::text, NULL::text[], NULL::bigint[], stale_guards;
        RETURN;
    END IF;
    current_heads := ARRAY(SELECT h.hash FROM {heads}(originators) AS h);
    IF current_heads IS DISTINCT FROM array_prepend(expected_global, expected_sessions) THEN
        RETURN QUERY SELECT false, current_heads[1],
            current_heads[2:array_length(current_heads, 1)], NULL::bigint[], NULL::bigint[];
        RETURN;
    END IF;
    -- Rows are inserted, and positions drawn, in the arrays' order: the order the seals
    -- were chained in.
    WITH inserted AS (
        INSERT INTO {events} (originator_id, originator_version, topic, state)
        SELECT * FROM unnest(ids, versions, topics, states)
        RETURNING notification_id
    )
    SELECT array_agg(notification_id ORDER BY notification_id) INTO inserted_positions
    FROM inserted;
    PERFORM {write_seals}(inserted_positions, seal_originators, versions, event_hashes,
                          session_hashes, global_hashes);
    RETURN QUERY SELECT true, NULL::text, NULL::text[], inserted_positions, NULL::bigint[];
END
$body$
"""


@dataclass(frozen=True)
class SealingFunctions:
    """The functions of one events table: the statements that create them, and the calls
    (rendered once: composing SQL on every call costs more than the call itself)."""

    create: list[Composed]
    select_heads: bytes  # (originators) -> rows (originator_id, hash), the global one first
    write_seals: bytes  # (positions, originators, versions, event, session, global hashes)
    append_sealed: bytes  # see APPEND_SEALED_FUNCTION
    stale_guards: bytes  # (guard ids, guard versions) -> the stale ones' ordinals


def sealing_functions(
    schema: str, events_table: str, channel: str, *, id_type: str, lock_timeout: int
) -> SealingFunctions:
    """The functions the recorder of ``schema.events_table`` appends and seals with."""
    chain = SQL("{schema}.{table}").format(schema=Identifier(schema), table=Identifier(CHAIN_TABLE))
    names = {
        kind: SQL("{schema}.{name}").format(
            schema=Identifier(schema), name=Identifier(f"{events_table}_{kind}")
        )
        for kind in ("heads", "write_seals", "append_sealed", "stale_guards")
    }
    events = SQL("{schema}.{table}").format(
        schema=Identifier(schema), table=Identifier(events_table)
    )
    create = [
        SQL(CHAIN_HEADS_FUNCTION).format(function=names["heads"], chain=chain),
        SQL(WRITE_SEALS_FUNCTION).format(function=names["write_seals"], chain=chain),
        SQL(STALE_GUARDS_FUNCTION).format(
            function=names["stale_guards"], id_type=SQL(id_type), events=events
        ),
        SQL(APPEND_SEALED_FUNCTION).format(
            function=names["append_sealed"],
            id_type=SQL(id_type),
            lock_timeout=SQL(str(lock_timeout)),
            events=events,
            channel=Identifier(channel),
            heads=names["heads"],
            stale=names["stale_guards"],
            write_seals=names["write_seals"],
        ),
    ]
    calls = {
        "heads": "SELECT originator_id, hash FROM {function}(%s::text[])",
        "write_seals": "SELECT {function}(%s::bigint[], %s::text[], %s::bigint[], %s::text[], "
        "%s::text[], %s::text[])",
        "append_sealed": "SELECT * FROM {function}(" + ", ".join(["%s"] * 13) + ")",
        "stale_guards": "SELECT {function}(%s, %s::bigint[]) AS stale",
    }
    rendered = {
        kind: SQL(call).format(function=names[kind]).as_string(None).encode()
        for kind, call in calls.items()
    }
    return SealingFunctions(
        create,
        rendered["heads"],
        rendered["write_seals"],
        rendered["append_sealed"],
        rendered["stale_guards"],
    )
