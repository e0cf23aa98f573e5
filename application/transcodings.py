"""JSON transcodings for the dataclasses held in aggregate state, so snapshots can store them."""

from __future__ import annotations

import dataclasses
from typing import Any

from eventsourcing.persistence import Transcoding


class DataclassAsDict(Transcoding):
    """Encode a flat dataclass as the dict of its fields; the transcoder handles the values."""

    def __init__(self, cls: type[Any], name: str) -> None:
        self.type = cls
        self.name = name

    def encode(self, obj: Any) -> dict[str, Any]:
        """The dataclass's fields, by name."""
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}

    def decode(self, data: dict[str, Any]) -> Any:
        """A new instance from the stored fields."""
        return self.type(**data)
