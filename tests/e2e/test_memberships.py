"""POST /session/switch-organization and /session/switch-workspace, for the active account."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.harness import Browser, Json, sign_in_of
from tests.e2e.wire import malformed_spellings, ok, refused
from tests.helpers import ACME, ACME_DATA, ACME_WEB, ALICE, BOB, CAROL, GLOBEX

ALICE_IN_ACME: Json = {
    "id": "600000000000000001",
    "organization_id": ACME,
    "roles": [
        {
            "id": "300000000000000001",
            "name": "Admin",
            "permissions": ["organization:admin", "organization:manage"],
        }
    ],
}
ALICE_IN_GLOBEX: Json = {
    "id": "600000000000000002",
    "organization_id": GLOBEX,
    "roles": [{"id": "300000000000000003", "name": "Member", "permissions": ["organization:read"]}],
}
ALICE_IN_ACME_DATA: Json = {
    "id": "700000000000000002",
    "workspace_id": ACME_DATA,
    "organization_membership_id": "600000000000000001",
    "roles": [{"id": "500000000000000003", "name": "Viewer", "permissions": ["workspace:read"]}],
}
ALICE_IN_ACME_WEB_ID = "700000000000000001"
BOB_IN_ACME_ID = "600000000000000003"
NOBODY = (None, None, None, None)


def context(sign_in: Json) -> tuple[object, ...]:
    """What a sign-in works in: membership ids, then the membership objects."""
    return (
        sign_in["active_organization_membership_id"],
        sign_in["active_workspace_membership_id"],
        sign_in["active_organization_membership"],
        sign_in["active_workspace_membership"],
    )


def active_context(response: httpx.Response) -> tuple[object, ...]:
    """The context of the active sign-in after a successful switch, checked to be stored."""
    data = ok(response)
    active = data["active_signin"]
    assert active == next(s for s in data["signins"] if s["id"] == data["active_signin_id"])
    return context(active)


SWITCHES = ["/session/switch-organization", "/session/switch-workspace"]
PARAMETER = {SWITCHES[0]: "organization_id", SWITCHES[1]: "workspace_id"}


@pytest.mark.parametrize("route", SWITCHES)
def test_a_switch_needs_an_active_sign_in(browser: Browser, route: str) -> None:
    # Given an anonymous session
    assert browser.session()["signins"] == []

    # When the browser switches organization or workspace, or clears them
    codes = {
        target: refused(browser.post(route, **{PARAMETER[route]: target}), 400)
        for target in ["", ACME, ACME_WEB, "01"]
    }

    # Then each is refused: no account is active
    assert codes == dict.fromkeys(codes, "NO_ACTIVE_SIGN_IN")


@pytest.mark.parametrize("route", SWITCHES)
def test_a_live_sign_in_that_is_not_active_is_not_enough(browser: Browser, route: str) -> None:
    # Given Alice signed in, and Bob signed in and then out, so none is active
    browser.signed_in(ALICE)
    ok(browser.sign_out(browser.signed_in(BOB)["id"]))
    before = browser.session()
    assert before["active_signin_id"] is None

    # When the browser switches organization or workspace
    response = browser.post(route, **{PARAMETER[route]: ACME if "org" in route else ACME_WEB})

    # Then it is refused, and Alice's context is untouched
    assert refused(response, 400) == "NO_ACTIVE_SIGN_IN"
    assert browser.session() == before


def test_switching_organization_activates_the_users_membership(browser: Browser) -> None:
    # Given Alice signed in without an organization
    assert context(browser.signed_in(ALICE)) == NOBODY

    # When she switches to Acme
    found = active_context(browser.switch_organization(ACME))

    # Then her Acme membership, with its roles, is active and no workspace is
    assert found == (ALICE_IN_ACME["id"], None, ALICE_IN_ACME, None)
    assert context(browser.session()["active_signin"]) == found


def test_switching_organization_clears_the_workspace(browser: Browser) -> None:
    # Given Alice working in Acme Web
    browser.signed_in(ALICE)
    ok(browser.switch_workspace(ACME_WEB))

    # When she switches to Globex
    found = active_context(browser.switch_organization(GLOBEX))

    # Then Globex is active, and no workspace
    assert found == (ALICE_IN_GLOBEX["id"], None, ALICE_IN_GLOBEX, None)


def test_switching_to_the_same_organization_still_clears_the_workspace(browser: Browser) -> None:
    # Given Alice working in Acme Data
    browser.signed_in(ALICE)
    ok(browser.switch_workspace(ACME_DATA))

    # When she switches to Acme, the organization she is already in
    found = active_context(browser.switch_organization(ACME))

    # Then Acme stays active and the workspace is cleared
    assert found == (ALICE_IN_ACME["id"], None, ALICE_IN_ACME, None)


@pytest.mark.parametrize("route", SWITCHES)
def test_an_empty_id_clears_organization_and_workspace(browser: Browser, route: str) -> None:
    # Given Alice working in Acme Data
    browser.signed_in(ALICE)
    ok(browser.switch_workspace(ACME_DATA))

    # When she switches to an empty organization or workspace
    found = active_context(browser.post(route, **{PARAMETER[route]: ""}))

    # Then both are cleared
    assert found == NOBODY
    assert context(browser.session()["active_signin"]) == NOBODY


def test_switching_workspace_activates_it_and_its_organization(browser: Browser) -> None:
    # Given Alice working in Globex
    browser.signed_in(ALICE)
    ok(browser.switch_organization(GLOBEX))

    # When she switches to the Acme Data workspace
    found = active_context(browser.switch_workspace(ACME_DATA))

    # Then that workspace membership is active, and Acme, its parent, with it
    assert found == (
        ALICE_IN_ACME["id"],
        ALICE_IN_ACME_DATA["id"],
        ALICE_IN_ACME,
        ALICE_IN_ACME_DATA,
    )


def test_a_switch_changes_only_the_active_account(browser: Browser) -> None:
    # Given Alice working in Acme Data, then Bob signed in and active
    alice = browser.signed_in(ALICE)["id"]
    ok(browser.switch_workspace(ACME_DATA))
    browser.signed_in(BOB)
    alice_before = context(sign_in_of(browser.session(), ALICE))

    # When Bob switches to the Acme Web workspace
    found = active_context(browser.switch_workspace(ACME_WEB))

    # Then Bob works in his own memberships, and Alice in hers, as before
    assert found[:2] == (BOB_IN_ACME_ID, "700000000000000003")
    session = browser.session()
    assert context(sign_in_of(session, ALICE)) == alice_before
    assert session["active_signin"]["id"] != alice


def not_a_member_cases(route: str) -> dict[str, str]:
    """Ids Bob (a member of Acme and Acme Web only) holds no membership of, by route."""
    if route == SWITCHES[0]:
        mine, theirs, other_kind = ACME, GLOBEX, ACME_WEB
        membership_ids = [BOB_IN_ACME_ID, ALICE_IN_ACME["id"]]
    else:
        mine, theirs, other_kind = ACME_WEB, ACME_DATA, ACME
        membership_ids = ["700000000000000003", ALICE_IN_ACME_WEB_ID]
    cases = {name: raw for name, raw in malformed_spellings(mine).items() if raw != ""}
    cases |= {"unknown": "1", "another user's": theirs, "of the other kind": other_kind}
    cases |= {f"membership id {i}": raw for i, raw in enumerate(membership_ids)}
    return cases


@pytest.mark.parametrize("route", SWITCHES)
def test_anything_but_a_membership_of_the_user_is_one_not_a_member(
    browser: Browser, route: str
) -> None:
    # Given Bob signed in, working in Acme Web, and Carol signed in and active
    browser.signed_in(BOB)
    ok(browser.switch_workspace(ACME_WEB))
    browser.signed_in(CAROL)
    ok(browser.switch_sign_in(sign_in_of(browser.session(), BOB)["id"]))
    before = browser.session()

    # When Bob switches to ids he holds no membership of: unknown, another user's, malformed
    responses = {
        name: browser.post(route, **{PARAMETER[route]: raw})
        for name, raw in not_a_member_cases(route).items()
    }

    # Then each is the same 400 NOT_A_MEMBER, and nothing changed
    assert {name: refused(r, 400) for name, r in responses.items()} == dict.fromkeys(
        responses, "NOT_A_MEMBER"
    )
    assert len({r.content for r in responses.values()}) == 1
    assert browser.session() == before
