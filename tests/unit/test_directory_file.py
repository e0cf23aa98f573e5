"""The directory file format: every problem is named by its entry, and no password leaks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infrastructure.directory_file import DirectoryFileError, parse_directory

DEMO = Path(__file__).resolve().parents[2] / "infrastructure" / "demo" / "demo-directory.json"
SECRET = "correct-horse-battery-staple"

Edit = Callable[[dict[str, Any]], None]


def demo() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEMO.read_text())
    return data


def problem_of(edit: Edit) -> str:
    data = demo()
    edit(data)
    with pytest.raises(DirectoryFileError) as caught:
        parse_directory(json.dumps(data))
    return str(caught.value)


def test_the_demo_file_parses() -> None:
    directory = parse_directory(DEMO.read_bytes())

    assert [u.email for u in directory.users] == [
        "alice@example.com", "bob@example.com", "carol@example.com"
    ]  # fmt: skip
    assert directory.users[0].id == 100000000000000001
    assert directory.organizations[0].workspaces[0].roles[0].permissions == (
        "workspace:read", "workspace:write"
    )  # fmt: skip
    assert SECRET not in repr(directory)
    assert "alice-demo-password" not in repr(directory)


def test_emails_are_kept_lowercase() -> None:
    data = demo()
    data["users"][0]["email"] = "Alice@Example.COM"
    assert parse_directory(json.dumps(data)).users[0].email == "alice@example.com"


def _set(path: str, value: object) -> Edit:
    """An edit that sets ``a.0.b`` style paths."""

    def edit(data: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = data
        for part in parents:
            node = node[part]
        node[last] = value

    return edit


def _delete(path: str, key: str) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        node: Any = data
        for part in path.split("."):
            node = node[int(part) if part.isdigit() else part]
        del node[key]

    return edit


ROLE_9 = "300000000000000009"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_set("users.1.email", "bob@"), "users[1].email: not a valid email address"),
        (_set("users.1.email", "bob example.com"), "users[1].email: not a valid email address"),
        (_delete("users.2", "first_name"), "users[2].first_name: required field is missing"),
        (_set("users.0.id", 100000000000000001), "users[0].id: not a canonical id"),
        (_set("users.0.id", "0100000000000000001"), "users[0].id: not a canonical id"),
        (_set("users.0.id", str(2**64)), "users[0].id: not a canonical id"),
        (_set("users.0.first_name", 7), "users[0].first_name: Input should be a valid string"),
        (_set("organizations.0.roles.0.permissions", "organization:admin"),
         "organizations[0].roles[0].permissions: "),
        (_set("users.2.id", "100000000000000001"),
         "users[2].id: user id 100000000000000001 repeats users[0].id"),
        (_set("users.2.email", "ALICE@example.com"),
         "users[2].email: email alice@example.com repeats users[0].email"),
        (_set("organizations.1.id", "200000000000000001"),
         "organizations[1].id: organization id 200000000000000001 repeats organizations[0].id"),
        (_set("organizations.1.roles.0.id", "300000000000000001"),
         "organizations[1].roles[0].id: role id 300000000000000001 repeats"),
        (_set("organizations.0.workspaces.1.id", "400000000000000001"),
         "organizations[0].workspaces[1].id: workspace id 400000000000000001 repeats"),
        (_set("organizations.0.workspaces.1.roles.0.id", "500000000000000001"),
         "organizations[0].workspaces[1].roles[0].id: role id 500000000000000001 repeats"),
        (_set("organization_memberships.2.id", "600000000000000001"),
         "organization_memberships[2].id: membership id 600000000000000001 repeats"),
        (_set("workspace_memberships.2.id", "700000000000000001"),
         "workspace_memberships[2].id: membership id 700000000000000001 repeats"),
        (_set("organization_memberships.2.user_id", "100000000000000009"),
         "organization_memberships[2].user_id: user 100000000000000009 is not in users"),
        (_set("organization_memberships.2.organization_id", "200000000000000009"),
         "organization_memberships[2].organization_id: organization 200000000000000009 is not"),
        (_set("organization_memberships.2.role_ids.0", ROLE_9),
         f"organization_memberships[2].role_ids[0]: role {ROLE_9} is not a role of organization"
         " 200000000000000001"),
        (_set("organization_memberships.0.role_ids", ["300000000000000001"] * 2),
         "organization_memberships[0].role_ids[1]: role 300000000000000001 is listed twice"),
        (_set("organization_memberships.2.user_id", "100000000000000001"),
         "organization_memberships[2]: membership of user 100000000000000001 in organization"
         " 200000000000000001 repeats organization_memberships[0]"),
        (_set("workspace_memberships.2.workspace_id", "400000000000000009"),
         "workspace_memberships[2].workspace_id: workspace 400000000000000009 is not in any"),
        (_set("workspace_memberships.2.organization_membership_id", "600000000000000009"),
         "workspace_memberships[2].organization_membership_id: organization membership"
         " 600000000000000009 is not in organization_memberships"),
        (_set("workspace_memberships.2.organization_membership_id", "600000000000000002"),
         "workspace_memberships[2].organization_membership_id: organization membership"
         " 600000000000000002 is of organization 200000000000000002, but workspace"
         " 400000000000000001 belongs to organization 200000000000000001"),
        (_set("workspace_memberships.2.role_ids.0", "500000000000000003"),
         "workspace_memberships[2].role_ids[0]: role 500000000000000003 is not a role of"
         " workspace 400000000000000001"),
        (_set("workspace_memberships.2.organization_membership_id", "600000000000000001"),
         "workspace_memberships[2]: workspace membership of 600000000000000001 in workspace"
         " 400000000000000001 repeats workspace_memberships[0]"),
    ],
)  # fmt: skip
def test_each_problem_names_its_entry(edit: Edit, expected: str) -> None:
    assert expected in problem_of(edit)


def test_every_problem_is_reported_at_once() -> None:
    def edit(data: dict[str, Any]) -> None:
        data["users"][2]["id"] = "100000000000000001"
        data["workspace_memberships"][2]["role_ids"] = [ROLE_9]

    data = demo()
    edit(data)
    with pytest.raises(DirectoryFileError) as caught:
        parse_directory(json.dumps(data))
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "users[2].id", "workspace_memberships[2].role_ids[0]"
    ]  # fmt: skip


def test_reference_checks_wait_for_a_well_formed_file() -> None:
    def edit(data: dict[str, Any]) -> None:
        data["users"][0]["email"] = "nope"
        data["workspace_memberships"][2]["role_ids"] = [ROLE_9]

    assert problem_of(edit) == "users[0].email: not a valid email address"


def test_json_syntax_errors_say_where() -> None:
    with pytest.raises(DirectoryFileError, match=r"invalid JSON at line 2, column 1"):
        parse_directory('{"users": [\n')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[]", "the file: Input should be an object"),
        (b"\xff\xfe", "not UTF-8 text"),
        ('{"users": []}', "organizations: required field is missing"),
    ],
)
def test_files_of_the_wrong_shape_are_refused(text: str | bytes, expected: str) -> None:
    with pytest.raises(DirectoryFileError, match=expected):
        parse_directory(text)


@pytest.mark.parametrize(
    "edit",
    [
        _set("users.0.password", 12345),
        _set("users.0.password", ""),
        _set("users.0.email", SECRET),
        _set("users.0.first_name", ["x", SECRET]),
    ],
)
def test_no_message_quotes_a_password(edit: Edit) -> None:
    def with_secret(data: dict[str, Any]) -> None:
        data["users"][0]["password"] = SECRET
        edit(data)

    message = problem_of(with_secret)
    assert message.startswith("users[0].")
    assert SECRET not in message
    assert "12345" not in message
    assert "alice-demo-password" not in message


def test_fields_the_service_does_not_use_are_ignored() -> None:
    data = json.loads(DEMO.read_text())
    _set("users.0.nickname", "al")(data)
    _set("organizations.0.description", "Acme Corp")(data)
    directory = parse_directory(json.dumps(data))
    assert directory.users[0].first_name == "Alice"
