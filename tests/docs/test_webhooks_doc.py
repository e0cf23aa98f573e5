"""docs/webhooks.md shows the catalogue the service serves: every type, the same example bodies."""

from __future__ import annotations

import json
import re
from pathlib import Path

from infrastructure.webhooks.examples import catalogue

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def test_every_event_type_is_documented_with_the_served_example() -> None:
    text = DOC.read_text()
    pattern = r"^### `([a-z._]+)`\n\n.*?\n\n```json\n(.*?)```"
    documented = dict(re.findall(pattern, text, re.M | re.S))
    served = {entry["type"]: entry["example"] for entry in catalogue()}
    assert set(documented) == set(served)
    for kind, body in documented.items():
        assert json.loads(body) == served[kind], kind
