"""The directory file: users, organizations, workspaces, roles and memberships, as JSON.

:func:`parse_directory` checks everything a load relies on before any SQL runs, and names
each bad entry by its path in the file (``users[1].email``). No message quotes a password:
they are held as ``SecretStr`` and pydantic's messages are rebuilt without input values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, SecretStr, ValidationError

from domain.ids import parse_id

_SHOWN_PROBLEMS = 10
# Deliberately simple: one @, no spaces, a dot in the domain. Delivery is the real test.
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")


class DirectoryFileError(ValueError):
    """Raised when a directory file cannot be loaded; ``problems`` names each bad entry."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        more = len(self.problems) - _SHOWN_PROBLEMS
        message = "; ".join(self.problems[:_SHOWN_PROBLEMS])
        super().__init__(message + (f"; and {more} more" if more > 0 else ""))


def _id(value: Any) -> int:
    parsed = parse_id(value) if isinstance(value, str) else None
    if parsed is None:
        msg = "not a canonical id (a string of decimal digits without leading zero, < 2**64)"
        raise ValueError(msg)
    return parsed


def _email(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 254 or _EMAIL.fullmatch(value) is None:
        msg = "not a valid email address"
        raise ValueError(msg)
    return value.lower()


Id = Annotated[int, PlainValidator(_id)]
Email = Annotated[str, PlainValidator(_email)]


class _Entry(BaseModel):
    # Fields we do not use (a username, a description…) are ignored, so exports from other
    # systems load; a misspelt required field still fails as missing.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class RoleEntry(_Entry):
    """A role of an organization or a workspace; permissions keep their order."""

    id: Id
    name: str
    permissions: tuple[str, ...]


class WorkspaceEntry(_Entry):
    """A workspace of an organization, with its roles."""

    id: Id
    name: str
    roles: tuple[RoleEntry, ...]


class OrganizationEntry(_Entry):
    """An organization, with its roles and workspaces."""

    id: Id
    name: str
    roles: tuple[RoleEntry, ...]
    workspaces: tuple[WorkspaceEntry, ...]


class UserEntry(_Entry):
    """A user; without a password the user keeps any stored one (or has none)."""

    id: Id
    email: Email
    password: Annotated[SecretStr, Field(min_length=1)] | None = None
    first_name: str
    last_name: str


class OrganizationMembershipEntry(_Entry):
    """A user's membership of an organization, with roles of that organization."""

    id: Id
    organization_id: Id
    user_id: Id
    role_ids: tuple[Id, ...]


class WorkspaceMembershipEntry(_Entry):
    """A membership of a workspace, under an organization membership of its organization."""

    id: Id
    workspace_id: Id
    organization_membership_id: Id
    role_ids: tuple[Id, ...]


class DirectoryFile(_Entry):
    """A whole directory file, parsed and checked."""

    users: tuple[UserEntry, ...]
    organizations: tuple[OrganizationEntry, ...]
    organization_memberships: tuple[OrganizationMembershipEntry, ...]
    workspace_memberships: tuple[WorkspaceMembershipEntry, ...]


def parse_directory(text: str | bytes) -> DirectoryFile:
    """Parse and check a directory file; raise :class:`DirectoryFileError` naming bad entries."""
    try:
        raw = text.decode("utf-8-sig") if isinstance(text, bytes) else text
        json.loads(raw)  # for a syntax error message of our own, with line and column
    except UnicodeDecodeError as error:
        raise DirectoryFileError([f"not UTF-8 text (byte {error.start})"]) from None
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise DirectoryFileError([f"invalid JSON at {where}: {error.msg}"]) from None
    try:
        directory = DirectoryFile.model_validate_json(raw, strict=True)
    except ValidationError as error:
        raise DirectoryFileError([_describe(e) for e in error.errors()]) from None
    problems = _check_references(directory)
    if problems:
        raise DirectoryFileError(problems)
    return directory


def _describe(error: Any) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
    # Our validators' messages are complete; pydantic's own never include the input value.
    if error["type"] == "value_error":
        message = str(error["ctx"]["error"])
    elif error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "missing":
        message = "required field is missing"
    else:
        message = str(error["msg"])
    return f"{path.removeprefix('.') or 'the file'}: {message}"


class _Seen:
    """First paths of ids (or keys) of one kind, reporting any repeat."""

    def __init__(self, problems: list[str], what: str) -> None:
        self.paths: dict[object, str] = {}
        self._problems = problems
        self._what = what

    def add(self, key: object, path: str, shown: object) -> None:
        if key in self.paths:
            self._problems.append(f"{path}: {self._what} {shown} repeats {self.paths[key]}")
        else:
            self.paths[key] = path


def _check_references(d: DirectoryFile) -> list[str]:
    problems: list[str] = []
    users, emails = _Seen(problems, "user id"), _Seen(problems, "email")
    for i, user in enumerate(d.users):
        users.add(user.id, f"users[{i}].id", user.id)
        emails.add(user.email, f"users[{i}].email", user.email)
    orgs, org_roles = _Seen(problems, "organization id"), _Seen(problems, "role id")
    workspaces, ws_roles = _Seen(problems, "workspace id"), _Seen(problems, "role id")
    roles_of_org: dict[int, set[int]] = {}
    roles_of_ws: dict[int, set[int]] = {}
    org_of_ws: dict[int, int] = {}
    for i, org in enumerate(d.organizations):
        orgs.add(org.id, f"organizations[{i}].id", org.id)
        roles_of_org.setdefault(org.id, set())
        for j, role in enumerate(org.roles):
            org_roles.add(role.id, f"organizations[{i}].roles[{j}].id", role.id)
            roles_of_org[org.id].add(role.id)
        for k, ws in enumerate(org.workspaces):
            path = f"organizations[{i}].workspaces[{k}]"
            workspaces.add(ws.id, f"{path}.id", ws.id)
            org_of_ws.setdefault(ws.id, org.id)
            roles_of_ws.setdefault(ws.id, set())
            for j, role in enumerate(ws.roles):
                ws_roles.add(role.id, f"{path}.roles[{j}].id", role.id)
                roles_of_ws[ws.id].add(role.id)
    org_ms, org_pairs = _Seen(problems, "membership id"), _Seen(problems, "membership of user")
    org_of_membership: dict[int, int] = {}
    for m, om in enumerate(d.organization_memberships):
        path = f"organization_memberships[{m}]"
        org_ms.add(om.id, f"{path}.id", om.id)
        org_of_membership.setdefault(om.id, om.organization_id)
        if om.user_id not in users.paths:
            problems.append(f"{path}.user_id: user {om.user_id} is not in users")
        if om.organization_id not in orgs.paths:
            problems.append(
                f"{path}.organization_id: organization {om.organization_id} is not in organizations"
            )
        else:
            owner = f"organization {om.organization_id}"
            _check_roles(problems, path, om.role_ids, roles_of_org[om.organization_id], owner)
        pair = (om.user_id, om.organization_id)
        org_pairs.add(pair, path, f"{om.user_id} in organization {om.organization_id}")
    ws_ms, ws_pairs = _Seen(problems, "membership id"), _Seen(problems, "workspace membership")
    for m, wm in enumerate(d.workspace_memberships):
        path = f"workspace_memberships[{m}]"
        ws_ms.add(wm.id, f"{path}.id", wm.id)
        ws_org = org_of_ws.get(wm.workspace_id)
        parent_org = org_of_membership.get(wm.organization_membership_id)
        if ws_org is None:
            problems.append(
                f"{path}.workspace_id: workspace {wm.workspace_id} is not in any organization"
            )
        else:
            owner = f"workspace {wm.workspace_id}"
            _check_roles(problems, path, wm.role_ids, roles_of_ws[wm.workspace_id], owner)
        if parent_org is None:
            problems.append(
                f"{path}.organization_membership_id: organization membership"
                f" {wm.organization_membership_id} is not in organization_memberships"
            )
        elif ws_org is not None and parent_org != ws_org:
            problems.append(
                f"{path}.organization_membership_id: organization membership"
                f" {wm.organization_membership_id} is of organization {parent_org}, but workspace"
                f" {wm.workspace_id} belongs to organization {ws_org}"
            )
        pair = (wm.organization_membership_id, wm.workspace_id)
        shown = f"of {wm.organization_membership_id} in workspace {wm.workspace_id}"
        ws_pairs.add(pair, path, shown)
    return problems


def _check_roles(
    problems: list[str], path: str, role_ids: Sequence[int], known: set[int], owner: str
) -> None:
    for r, role_id in enumerate(role_ids):
        if role_id not in known:
            problems.append(f"{path}.role_ids[{r}]: role {role_id} is not a role of {owner}")
        elif role_id in role_ids[:r]:
            problems.append(f"{path}.role_ids[{r}]: role {role_id} is listed twice")
