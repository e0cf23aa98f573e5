"""PostgreSQL array literals, written in one pass for the append function's parameters.

psycopg adapts a Python list by inspecting its elements to choose a dumper, then dumping
each one through it: for the append's twelve arrays that was about a fifth of a switch's
CPU in the serving process. Given as a literal (a ``str``, which psycopg sends with the
"unknown" type), the server parses each array as the function's parameter type, in C.
Every text element is quoted and escaped, so any string round-trips unchanged (tested).
"""

from __future__ import annotations

from collections.abc import Iterable


def text_array(items: Iterable[object | None]) -> str:
    """``{"a","b\\"c",NULL}``: each item's ``str``, quoted and escaped; None is NULL."""
    return "{" + ",".join(map(_element, items)) + "}"


def bigint_array(items: Iterable[int]) -> str:
    """``{1,2,3}``."""
    return "{" + ",".join(map(str, map(int, items))) + "}"


def bytea_array(items: Iterable[bytes]) -> str:
    """``{"\\\\x6869"}``: each item in bytea's hex input form, quoted."""
    return "{" + ",".join(['"\\\\x' + item.hex() + '"' for item in items]) + "}"


def _element(item: object | None) -> str:
    if item is None:
        return "NULL"
    return '"' + str(item).replace("\\", "\\\\").replace('"', '\\"') + '"'
