"""Tamper evidence: edit the store behind the service's back, and `audit verify` names the link.

Given a store with a recorded history whose chain head an auditor kept, when someone with
database access edits, deletes, swaps, inserts or re-seals rows directly (``sqlite3`` on the
file, ``psycopg`` on the schema), then ``session-ledger audit verify`` exits non-zero and
names the first broken link, and so does ``GET /admin/audit/verify``. Edits that only
change how SQLite stores a value (an id's spelling, a payload's storage class) count too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from infrastructure.audit.chain import GENESIS, Chain
from tests.audit.support import (
    STEP,
    TOKEN,
    History,
    RawStore,
    StoredRow,
    admin_data,
    record_history,
    run_cli,
    session_events,
)
from tests.e2e.harness import Json, open_stack
from tests.helpers import ALICE, BOB, CAROL

pytestmark = pytest.mark.slow  # `session-ledger audit verify` as a process, per test

FAILED = "audit verification FAILED"


@dataclass(frozen=True)
class Sealed:
    """A store with a recorded history, closed, and the chain head kept before any tampering."""

    url: str
    history: History
    head: str

    @property
    def store(self) -> RawStore:
        return RawStore(self.url)


def seal_history(url: str, **settings: Any) -> Sealed:
    with open_stack(url, admin_token=TOKEN, **settings) as stack:
        history = record_history(stack)
        report = stack.services.audit.verify()
        assert report.ok, report.problem
        return Sealed(url, history, report.head_hash)


@pytest.fixture
def sealed(durable_database_url: str) -> Sealed:
    return seal_history(durable_database_url)


def http_verify(url: str, **params: str) -> Json:
    """What GET /admin/audit/verify says about the store, from fresh services."""
    with open_stack(url, admin_token=TOKEN, load_demo=False) as stack:
        return admin_data(stack.browser, "/admin/audit/verify", **params)


def session_rows(store: RawStore, session_id: str) -> list[StoredRow]:
    return [
        r
        for r in store.rows()
        if r.topic.startswith("session-ledger:Session.") and r.session_id == session_id
    ]


def first(rows: list[StoredRow], kind: str) -> StoredRow:
    return next(r for r in rows if r.type == kind)


def named(row: StoredRow, with_type: bool = True) -> str:
    """How verification names an event: ``session S, version V (Type)``, as docs/audit.md."""
    kind = row.topic.split(".")[-1]
    return f"session {row.session_id}, version {row.version}" + (f" ({kind})" if with_type else "")


# Each tampering edits the store and returns what the report must say (substrings).
Tampering = Callable[[RawStore, History], list[str]]


def alter_a_payload(store: RawStore, history: History) -> list[str]:
    """Alice's sign-in now says Carol signed in."""
    row = first(session_rows(store, history.shared), "SignInCompleted")
    forged = row.state.replace(ALICE[2].encode(), CAROL[2].encode())
    assert forged != row.state
    store.execute(("UPDATE {events} SET state = %s WHERE {position} = %s", (forged, row.position)))
    return [f"position {row.position}: {named(row)} was altered"]


def delete_a_middle_event(store: RawStore, history: History) -> list[str]:
    row = first(session_rows(store, history.shared), "MembershipActivated")
    store.execute(("DELETE FROM {events} WHERE {position} = %s", (row.position,)))
    sealed_as = named(row, with_type=False)
    return [f"position {row.position}: the event sealed here ({sealed_as}) is missing (deleted)"]


def delete_a_middle_event_and_its_seal(store: RawStore, history: History) -> list[str]:
    """Bob's attempt goes, seal and all; his completed sign-in, next in the log, stays."""
    rows = store.rows()
    attempt = [r for r in session_rows(store, history.shared) if r.type == "SignInAttempted"][1]
    successor = rows[rows.index(attempt) + 1]
    assert (successor.originator_id, successor.version) == (
        attempt.originator_id,
        attempt.version + 1,
    )
    store.execute(
        ("DELETE FROM {events} WHERE {position} = %s", (attempt.position,)),
        ("DELETE FROM {chain} WHERE position = %s", (attempt.position,)),
    )
    return [
        f"position {successor.position}: {named(successor)}",
        f"version {attempt.version} is missing (deleted)",
    ]


def swap_two_payloads(store: RawStore, history: History) -> list[str]:
    """The organization and the workspace activations trade places."""
    one, two = [r for r in session_rows(store, history.shared) if r.type == "MembershipActivated"]
    store.execute(
        ("UPDATE {events} SET state = %s WHERE {position} = %s", (two.state, one.position)),
        ("UPDATE {events} SET state = %s WHERE {position} = %s", (one.state, two.position)),
    )
    return [f"position {one.position}: {named(one)} was altered"]


def swap_two_versions(store: RawStore, history: History) -> list[str]:
    """Bob's attempt and his completed sign-in trade versions (so replay order changes)."""
    rows = session_rows(store, history.shared)
    attempt = [r for r in rows if r.type == "SignInAttempted"][1]
    done = next(r for r in rows if r.version == attempt.version + 1)
    store.execute(
        ("UPDATE {events} SET originator_version = -1 WHERE {position} = %s", (attempt.position,)),
        (
            "UPDATE {events} SET originator_version = %s WHERE {position} = %s",
            (attempt.version, done.position),
        ),
        (
            "UPDATE {events} SET originator_version = %s WHERE {position} = %s",
            (done.version, attempt.position),
        ),
    )
    sid = history.shared
    return [
        f"position {attempt.position}: found session {sid}, version {done.version} (",
        f"where session {sid}, version {attempt.version} was sealed",
    ]


def insert_a_copy(store: RawStore, history: History) -> list[str]:
    """A replayed switch, appended as the session's next version."""
    rows = session_rows(store, history.shared)
    copied = first(rows, "ActiveSignInSwitched")
    version = rows[-1].version + 1
    store.execute(
        (
            "INSERT INTO {events} (originator_id, originator_version, topic, state) "
            "SELECT originator_id, %s, topic, state FROM {events} WHERE {position} = %s",
            (version, copied.position),
        )
    )
    inserted = store.rows()[-1]
    assert (inserted.originator_id, inserted.version) == (copied.originator_id, version)
    return [
        f"position {inserted.position}: {named(inserted)} has no seal: "
        "it was not written by the service (inserted)"
    ]


def alter_a_seal(store: RawStore, history: History) -> list[str]:
    row = first(session_rows(store, history.shared), "SignInCompleted")
    store.execute(
        ("UPDATE {chain} SET global_hash = %s WHERE position = %s", ("ab" * 32, row.position))
    )
    return [f"position {row.position}: the chain breaks at {named(row)}"]


TAMPERINGS: dict[str, Tampering] = {
    "payload altered": alter_a_payload,
    "middle event deleted": delete_a_middle_event,
    "middle event deleted with its seal": delete_a_middle_event_and_its_seal,
    "payloads swapped": swap_two_payloads,
    "versions swapped": swap_two_versions,
    "event inserted": insert_a_copy,
    "seal altered": alter_a_seal,
}


def test_an_untampered_store_verifies_and_prints_its_head(sealed: Sealed) -> None:
    result = run_cli(["audit", "verify"], sealed.url)
    assert result.returncode == 0, result.stderr
    assert f"hash {sealed.head}" in result.stdout
    assert f"{len(sealed.store.rows())} events" in result.stdout

    kept = run_cli(["audit", "verify", "--head", sealed.head], sealed.url)
    assert kept.returncode == 0, kept.stderr

    report = http_verify(sealed.url, head=sealed.head)
    assert report["ok"] is True
    assert report["problem"] is None
    assert report["head_found"] is True
    assert report["head"] == {"position": len(sealed.store.rows()), "hash": sealed.head}


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_verify_names_the_first_broken_link(sealed: Sealed, tampering: str) -> None:
    expected = TAMPERINGS[tampering](sealed.store, sealed.history)

    result = run_cli(["audit", "verify"], sealed.url)

    assert result.returncode != 0
    assert FAILED in result.stderr
    for part in expected:
        assert part in result.stderr
    report = http_verify(sealed.url)
    assert report["ok"] is False
    problem = str(report["problem"])
    for part in expected:
        assert part in problem


def test_deleting_the_newest_events_with_their_seals_is_caught_against_a_kept_head(
    sealed: Sealed,
) -> None:
    # Carol's sign-out of all her accounts is erased: the event, its cookie rotation, seals.
    store = sealed.store
    sign_out = first(session_rows(store, sealed.history.carol), "SignedOutOfAll")
    assert len(store.rows()) - store.rows().index(sign_out) == 3  # with Issued and Revoked
    store.execute(
        ("DELETE FROM {events} WHERE {position} >= %s", (sign_out.position,)),
        ("DELETE FROM {chain} WHERE position >= %s", (sign_out.position,)),
    )

    alone = http_verify(sealed.url)
    assert alone["ok"] is True, alone  # documented: alone, a cut tail looks whole
    assert alone["head"]["position"] == sign_out.position - 1
    assert alone["head"]["hash"] != sealed.head

    kept = run_cli(["audit", "verify", "--head", sealed.head], sealed.url)
    assert kept.returncode != 0
    assert FAILED in kept.stderr
    assert f"the chain head {sealed.head} is not in this history" in kept.stderr

    report = http_verify(sealed.url, head=sealed.head)
    assert report["ok"] is False
    assert report["head_found"] is False
    assert f"the chain head {sealed.head} is not in this history" in str(report["problem"])


def reseal_from(store: RawStore, position: int, chain: Chain) -> None:
    """What an intruder does after an edit: recompute every seal from ``position`` on."""
    seals = store.query(
        "SELECT position, originator_id, session_hash, global_hash FROM {chain} ORDER BY position"
    )
    head, heads = GENESIS, dict[str, bytes]()
    for at, originator, session_hash, global_hash in seals:
        if int(at) < position:
            head, heads[str(originator)] = bytes.fromhex(global_hash), bytes.fromhex(session_hash)
    rows = [r for r in store.rows() if r.position >= position]
    events = [StoredEvent(UUID(r.originator_id), r.version, r.topic, r.state) for r in rows]
    new = chain.seal(events, [r.position for r in rows], head, heads)
    store.execute(
        *[
            (
                "UPDATE {chain} SET event_hash = %s, session_hash = %s, global_hash = %s "
                "WHERE position = %s",
                (s.event_hash.hex(), s.session_hash.hex(), s.global_hash.hex(), s.position),
            )
            for s in new
        ]
    )


def test_a_recomputed_chain_is_caught_against_a_kept_head(sealed: Sealed) -> None:
    # Plain SHA-256: anyone can recompute the seals after an edit; only a kept head tells.
    alter_a_payload(sealed.store, sealed.history)
    edited = first(session_rows(sealed.store, sealed.history.shared), "SignInCompleted")
    reseal_from(sealed.store, edited.position, Chain())

    alone = http_verify(sealed.url)
    assert alone["ok"] is True, alone  # documented: the chain is consistent again

    kept = run_cli(["audit", "verify", "--head", sealed.head], sealed.url)
    assert kept.returncode != 0
    assert f"the chain head {sealed.head} is not in this history" in kept.stderr


def test_with_an_audit_key_a_recomputed_chain_is_caught_without_a_head(
    durable_database_url: str,
) -> None:
    key = "audit-key-kept-outside-the-store"
    sealed = seal_history(durable_database_url, audit_key=key)
    env = {"SESSION_LEDGER_AUDIT_KEY": key}
    alter_a_payload(sealed.store, sealed.history)
    edited = first(session_rows(sealed.store, sealed.history.shared), "SignInCompleted")
    reseal_from(sealed.store, edited.position, Chain())  # the intruder has no key

    result = run_cli(["audit", "verify"], sealed.url, env=env)
    assert result.returncode != 0
    assert f"position {edited.position}: {named(edited)} was altered" in result.stderr


def test_an_event_hidden_by_respelling_its_session_id_is_caught(sqlite_url: str) -> None:
    # SQLite keeps ids as text: 'ABC…' is the same UUID to the verifier, another key to the
    # store, so Carol's sign-out of all disappears from her session.
    sealed = seal_history(sqlite_url)
    sign_out = first(session_rows(sealed.store, sealed.history.carol), "SignedOutOfAll")
    sealed.store.execute(
        (
            "UPDATE {events} SET originator_id = upper(originator_id) WHERE {position} = %s",
            (sign_out.position,),
        )
    )
    with open_stack(sealed.url, admin_token=TOKEN, load_demo=False) as stack:
        carol = sealed.history.carol
        latest = session_events(stack.browser, carol)[-1]
        path = f"/admin/sessions/{carol}/state"
        state = admin_data(stack.browser, path, version=latest["version"])
    assert latest["type"] == "SignInCompleted"  # the sign-out is gone from the session
    assert [s["user_id"] for s in state["session"]["signins"]] == [CAROL[2]]

    result = run_cli(["audit", "verify"], sealed.url)
    assert result.returncode != 0
    assert f"position {sign_out.position}" in result.stderr


def test_a_payload_retyped_as_text_is_caught(sqlite_url: str) -> None:
    sealed = seal_history(sqlite_url)
    sign_out = first(session_rows(sealed.store, sealed.history.carol), "SignedOutOfAll")
    sealed.store.execute(
        (
            "UPDATE {events} SET state = CAST(state AS TEXT) WHERE {position} = %s",
            (sign_out.position,),
        )
    )
    kind = "SELECT typeof(state) FROM {events} WHERE {position} = %s"
    assert sealed.store.query(kind, (sign_out.position,)) == [("text",)]

    result = run_cli(["audit", "verify"], sealed.url)

    assert result.returncode != 0
    assert f"position {sign_out.position}: {named(sign_out)}" in result.stderr


# Snapshots ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshotted:
    url: str
    session_id: str
    sign_ins: tuple[str, str]
    states: dict[int, object]  # version -> GET state answer before tampering


def snapshotted(url: str) -> Snapshotted:
    """A session of 55 events (Alice and Bob, switching): a snapshot at version 50."""
    with open_stack(url, admin_token=TOKEN) as stack:
        browser = stack.browser
        alice, bob = browser.signed_in(ALICE), browser.signed_in(BOB)
        for n in range(50):
            stack.clock.advance(STEP)
            target = alice if n % 2 == 0 else bob
            assert browser.switch_sign_in(target["id"]).status_code == 200
        session_id = str(alice["session_id"])
        path = f"/admin/sessions/{session_id}/state"
        states: dict[int, object] = {v: admin_data(browser, path, version=v) for v in (50, 55)}
    store = RawStore(url)
    snapshots = store.query("SELECT originator_version FROM {snapshots}")
    assert [int(v) for (v,) in snapshots] == [50]
    return Snapshotted(url, session_id, (str(alice["id"]), str(bob["id"])), states)


def test_an_altered_snapshot_is_caught_and_not_trusted(durable_database_url: str) -> None:
    given = snapshotted(durable_database_url)
    store = RawStore(given.url)
    (state,) = store.query("SELECT state FROM {snapshots}")[0]
    document = json.loads(bytes(state))
    alice, bob = (int(i) for i in given.sign_ins)
    active = document["state"]["active_sign_in_id"]
    document["state"]["active_sign_in_id"] = bob if active == alice else alice
    forged = json.dumps(document, separators=(",", ":")).encode()
    store.execute(("UPDATE {snapshots} SET state = %s", (forged,)))

    result = run_cli(["audit", "verify"], given.url)

    expected = f"snapshot of session {given.session_id}, version 50 does not match the events"
    assert result.returncode != 0
    assert expected in result.stderr
    with open_stack(given.url, admin_token=TOKEN, load_demo=False) as stack:
        report = admin_data(stack.browser, "/admin/audit/verify")
        assert report["ok"] is False
        assert expected in str(report["problem"])
        # docs/audit.md: the state at a version is rebuilt from the events alone.
        path = f"/admin/sessions/{given.session_id}/state"
        for version, before in given.states.items():
            assert admin_data(stack.browser, path, version=version) == before


def test_an_unreadable_snapshot_is_reported_not_a_crash(durable_database_url: str) -> None:
    given = snapshotted(durable_database_url)
    RawStore(given.url).execute(("UPDATE {snapshots} SET state = %s", (b"\x00garbage",)))

    result = run_cli(["audit", "verify"], given.url)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"snapshot of session {given.session_id}, version 50" in result.stderr
