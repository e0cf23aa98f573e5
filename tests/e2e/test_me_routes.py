"""The /me routes Wacht's SDK calls: memberships of the active user, and its sign-ins on every
device, listed and ended from another browser. On SQLite and PostgreSQL, over HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from domain.ids import aggregate_uuid
from tests.e2e.harness import Browser, Json, Stack, sign_in_of
from tests.e2e.wire import envelope, malformed_spellings, new_token, ok, refused
from tests.helpers import ACME, ACME_DATA, ACME_WEB, ALICE, BOB, CAROL, GLOBEX

ORGANIZATIONS, WORKSPACES = "/me/organization-memberships", "/me/workspace-memberships"
SIGN_INS = "/me/signins"
READS = [ORGANIZATIONS, WORKSPACES, SIGN_INS]


def listed(response: httpx.Response) -> list[Json]:
    """The ``data`` of a successful list answer (the envelope checked)."""
    body = envelope(response, 200)
    assert body["errors"] is None
    assert body["session"] is not None
    data: list[Json] = body["data"]
    assert isinstance(data, list)
    return data


def remote_sign_out(browser: Browser, sign_in_id: str, **kwargs: Any) -> httpx.Response:
    """POST /me/signins/{id}/signout."""
    return browser.send("POST", f"/me/signins/{sign_in_id}/signout", **kwargs)


def events_of(stack: Stack, session_id: str) -> list[Any]:
    """The stored events of a session, decoded."""
    app = stack.services.sessions
    stored = app.recorder.select_events(aggregate_uuid(int(session_id)))
    return [app.mapper.to_domain_event(s) for s in stored]


# Memberships ---------------------------------------------------------------------------------


def test_organization_memberships_match_what_the_session_activates(stack: Stack) -> None:
    browser = stack.browser
    browser.signed_in(ALICE)
    ok(browser.switch_organization(GLOBEX))
    memberships = listed(browser.send("GET", ORGANIZATIONS))
    assert [(m["id"], m["organization"]["id"]) for m in memberships] == [
        ("600000000000000001", ACME),
        ("600000000000000002", GLOBEX),
    ]
    acme, globex = memberships
    assert acme["organization"]["name"] == "Acme"
    assert acme["organization"]["member_count"] == 2  # Alice and Bob
    assert globex["organization"]["member_count"] == 1
    assert acme["roles"] == [
        {
            "id": "300000000000000001",
            "organization_id": ACME,
            "name": "Admin",
            "permissions": ["organization:admin", "organization:manage"],
            "created_at": None,
            "updated_at": None,
        }
    ]
    assert acme["user"]["id"] == ALICE[2]
    assert acme["user"]["primary_email_address"]["email"] == ALICE[0]
    # The SDK finds the active organization by the sign-in's membership id
    active = browser.session()["active_signin"]
    found = [m for m in memberships if m["id"] == active["active_organization_membership_id"]]
    assert [m["organization"]["id"] for m in found] == [GLOBEX]
    roles = [{k: r[k] for k in ("id", "name", "permissions")} for r in found[0]["roles"]]
    assert roles == active["active_organization_membership"]["roles"]


def test_workspace_memberships_match_and_filter_by_organization(stack: Stack) -> None:
    browser = stack.browser
    browser.signed_in(ALICE)
    ok(browser.switch_workspace(ACME_DATA))
    memberships = listed(browser.send("GET", WORKSPACES))
    assert [(m["id"], m["workspace"]["id"]) for m in memberships] == [
        ("700000000000000001", ACME_WEB),
        ("700000000000000002", ACME_DATA),
    ]
    for membership in memberships:
        assert membership["organization_id"] == ACME
        assert membership["organization"]["id"] == ACME
        assert membership["organization_membership_id"] == "600000000000000001"
        assert membership["user_id"] == ALICE[2]
    assert memberships[1]["roles"] == [
        {
            "id": "500000000000000003",
            "workspace_id": ACME_DATA,
            "name": "Viewer",
            "permissions": ["workspace:read"],
            "created_at": None,
            "updated_at": None,
        }
    ]
    active = browser.session()["active_signin"]
    found = [m for m in memberships if m["id"] == active["active_workspace_membership_id"]]
    assert [m["workspace"]["name"] for m in found] == ["Acme Data"]

    assert len(listed(browser.send("GET", WORKSPACES, params={"org_id": ACME}))) == 2
    assert listed(browser.send("GET", WORKSPACES, params={"org_id": GLOBEX})) == []
    assert refused(browser.send("GET", WORKSPACES, params={"org_id": "+1"}), 400) == (
        "INVALID_REQUEST"
    )


def test_memberships_follow_the_active_account(stack: Stack) -> None:
    browser = stack.browser
    alice = browser.signed_in(ALICE)
    browser.signed_in(BOB)  # Bob is active now
    assert [m["id"] for m in listed(browser.send("GET", ORGANIZATIONS))] == ["600000000000000003"]
    assert [m["id"] for m in listed(browser.send("GET", WORKSPACES))] == ["700000000000000003"]
    ok(browser.switch_sign_in(alice["id"]))
    assert len(listed(browser.send("GET", ORGANIZATIONS))) == 2
    browser.signed_in(CAROL)  # no organization at all
    assert listed(browser.send("GET", ORGANIZATIONS)) == []
    assert listed(browser.send("GET", WORKSPACES)) == []


# Without a session, or without an active sign-in -----------------------------------------------


@pytest.mark.parametrize("path", READS)
def test_reads_need_a_session_and_an_active_sign_in(stack: Stack, path: str) -> None:
    browser = stack.browser
    assert refused(browser.send("GET", path), 401) == "UNAUTHORIZED"
    browser.use_cookie("not-a-token")
    assert refused(browser.send("GET", path), 401) == "UNAUTHORIZED"
    browser.use_cookie(None)
    browser.session()  # an anonymous session
    assert refused(browser.send("GET", path), 400) == "NO_ACTIVE_SIGN_IN"
    alice = browser.signed_in(ALICE)
    bob = browser.signed_in(BOB)
    ok(browser.sign_out(bob["id"]))  # Alice is still signed in, but nobody is active
    assert browser.session()["active_signin_id"] is None
    assert refused(browser.send("GET", path), 400) == "NO_ACTIVE_SIGN_IN"
    ok(browser.switch_sign_in(alice["id"]))
    listed(browser.send("GET", path))


def test_remote_sign_out_needs_a_session_and_an_active_sign_in(stack: Stack) -> None:
    other = stack.open_browser()
    target = other.signed_in(ALICE)["id"]
    browser = stack.browser
    assert refused(remote_sign_out(browser, target), 401) == "UNAUTHORIZED"
    browser.session()
    assert refused(remote_sign_out(browser, target), 400) == "NO_ACTIVE_SIGN_IN"
    assert [s["id"] for s in other.session()["signins"]] == [target]


# Sign-ins on every device ----------------------------------------------------------------------


def test_sign_ins_lists_the_active_users_sign_ins_in_every_browser(stack: Stack) -> None:
    laptop, phone = stack.browser, stack.open_browser()
    laptop.send("GET", "/session", headers={"User-Agent": "Laptop/1.0"})
    on_laptop = laptop.signed_in(ALICE)
    laptop.signed_in(BOB)
    stack.clock.advance(timedelta(minutes=5))
    phone.send("GET", "/session", headers={"User-Agent": "Phone/2.0"})
    form = {"email": ALICE[0], "password": ALICE[1], "strategy": "plain_email"}
    signed = phone.send("POST", "/auth/signin", data=form, headers={"User-Agent": "Phone/2.0"})
    on_phone = sign_in_of(ok(signed), ALICE)

    sign_ins = listed(phone.send("GET", SIGN_INS))
    assert [(s["id"], s["session_id"], s["current"]) for s in sign_ins] == [
        (on_laptop["id"], laptop.session()["id"], False),
        (on_phone["id"], phone.session()["id"], True),
    ]
    assert [s["user_agent"] for s in sign_ins] == ["testclient", "Phone/2.0"]
    for sign_in, shown in zip(sign_ins, [on_laptop, on_phone], strict=True):
        assert sign_in["user_id"] == ALICE[2]
        assert sign_in["created_at"] == shown["created_at"]
        assert sign_in["expires_at"] == shown["expires_at"]
        assert sign_in["last_active_at"] == shown["last_active_at"]
        assert sign_in["ip_address"] == ""  # the test client's "testclient" is no address
    # Bob is active on the laptop: the laptop lists Bob's only
    assert [s["user_id"] for s in listed(laptop.send("GET", SIGN_INS))] == [BOB[2]]


def test_sign_ins_show_the_last_activity_and_its_user_agent(stack: Stack) -> None:
    laptop, phone = stack.browser, stack.open_browser()
    laptop.signed_in(ALICE)
    phone.signed_in(ALICE)
    stack.clock.advance(timedelta(hours=1))
    used = laptop.send("POST", "/session/switch-organization", params={"organization_id": ACME},
                       headers={"User-Agent": "Laptop/3.0"})  # fmt: skip
    ok(used)
    laptop_row = listed(phone.send("GET", SIGN_INS))[0]
    assert laptop_row["user_agent"] == "Laptop/3.0"
    assert laptop_row["last_active_at"] == used.json()["data"]["active_signin"]["last_active_at"]


def test_expired_and_idle_sign_ins_are_not_listed(build_stack: Any) -> None:
    stack: Stack = build_stack(sign_in_idle_timeout_seconds=3600)
    laptop, phone = stack.browser, stack.open_browser()
    laptop.signed_in(ALICE)
    stack.clock.advance(timedelta(minutes=59))
    phone.signed_in(ALICE)
    assert len(listed(phone.send("GET", SIGN_INS))) == 2
    stack.clock.advance(timedelta(minutes=2))  # the laptop's sign-in is idle past its timeout
    assert [s["current"] for s in listed(phone.send("GET", SIGN_INS))] == [True]


# Ending a sign-in from another browser ---------------------------------------------------------


def test_a_sign_in_ended_from_another_browser_is_gone_there(stack: Stack) -> None:
    laptop, phone = stack.browser, stack.open_browser()
    on_laptop = laptop.signed_in(ALICE)
    bob_on_laptop = laptop.signed_in(BOB)
    ok(laptop.switch_sign_in(on_laptop["id"]))  # Alice active on the laptop, Bob there too
    on_phone = phone.signed_in(ALICE)
    laptop_session = laptop.session()["id"]
    phone_token = phone.token

    ended = remote_sign_out(phone, on_laptop["id"])
    body = envelope(ended, 200)
    assert body["data"] is None
    assert body["session"]["id"] == phone.session()["id"]
    assert "set-cookie" not in ended.headers  # the phone's own accounts did not change
    assert phone.token == phone_token

    # The laptop's next request no longer sees Alice; Bob stays, and nobody is active
    after = laptop.session()
    assert [s["id"] for s in after["signins"]] == [bob_on_laptop["id"]]
    assert after["active_signin_id"] is None
    assert refused(laptop.send("GET", "/session/token"), 400) == "NO_ACTIVE_SIGN_IN"
    # The phone still is where it was, and lists only itself
    assert [s["id"] for s in listed(phone.send("GET", SIGN_INS))] == [on_phone["id"]]

    # Recorded in the laptop's session, naming who did it
    last = events_of(stack, laptop_session)[-1]
    assert type(last).__name__ == "SignedOutRemotely"
    assert last.sign_in_id == int(on_laptop["id"])
    assert last.by_session_id == int(phone.session()["id"])
    assert last.by_sign_in_id == int(on_phone["id"])


def test_ending_this_browsers_own_sign_in_is_a_sign_out_with_a_new_cookie(stack: Stack) -> None:
    browser = stack.browser
    alice = browser.signed_in(ALICE)
    old = browser.token
    ended = remote_sign_out(browser, alice["id"])
    envelope(ended, 200)
    assert new_token(ended) != old
    assert browser.session()["signins"] == []
    browser.use_cookie(old)
    assert refused(browser.send("GET", "/session/token"), 401) == "UNAUTHORIZED"


def test_foreign_ended_unknown_and_malformed_ids_get_one_400(stack: Stack) -> None:
    laptop, phone = stack.browser, stack.open_browser()
    alice_on_laptop = laptop.signed_in(ALICE)
    bob_on_laptop = laptop.signed_in(BOB)
    ok(laptop.switch_sign_in(alice_on_laptop["id"]))
    alice_on_phone = phone.signed_in(ALICE)
    ended = stack.open_browser()
    gone = ended.signed_in(ALICE)["id"]
    assert envelope(remote_sign_out(phone, gone), 200)["data"] is None

    bad = {
        "another user's": bob_on_laptop["id"],
        "ended": gone,
        "unknown": str(int(alice_on_phone["id"]) + 12345),
        **{
            name: spelling
            for name, spelling in malformed_spellings(alice_on_laptop["id"]).items()
            if spelling  # an empty path segment is another route (404)
        },
    }
    before = stack.events_recorded()
    bodies = set()
    for name, sign_in_id in bad.items():
        response = remote_sign_out(phone, sign_in_id)
        assert refused(response, 400) == "INVALID_SIGN_IN_ID", name
        assert "set-cookie" not in response.headers, name
        bodies.add(response.text)
    assert len(bodies) == 1
    assert stack.events_recorded() == before
    assert len(laptop.session()["signins"]) == 2


def test_a_cross_site_remote_sign_out_is_refused(stack: Stack) -> None:
    laptop, phone = stack.browser, stack.open_browser()
    target = laptop.signed_in(ALICE)["id"]
    phone.signed_in(ALICE)
    response = remote_sign_out(phone, target, headers={"Origin": "https://evil.example"})
    assert refused(response, 403) == "FORBIDDEN_ORIGIN"
    assert [s["id"] for s in laptop.session()["signins"]] == [target]
