"""JSON transcodings for the dataclasses held in aggregate state, so snapshots can store them."""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime, tzinfo
from typing import Any

from eventsourcing.persistence import DatetimeAsISO, Transcoding


@functools.lru_cache(maxsize=16_384)
def _isoformat(moment: datetime, tzinfo: tzinfo | None, fold: int) -> str:
    """``moment.isoformat()``, remembered: a session's state holds a dozen or more datetimes,
    the same ones each time it is encoded (the projection writes the whole state on every
    event). ``tzinfo`` and ``fold`` are part of the key because equal datetimes (the same
    instant) in other zones, or either side of a fold, print differently."""
    return moment.isoformat()


class DataclassAsDict(Transcoding):
    """Encode a flat dataclass as the dict of its fields; the transcoder handles the values."""

    def __init__(self, cls: type[Any], name: str) -> None:
        self.type = cls
        self.name = name
        self._fields = tuple(f.name for f in dataclasses.fields(cls))

    def encode(self, obj: Any) -> dict[str, Any]:
        """The dataclass's fields, by name."""
        return {name: getattr(obj, name) for name in self._fields}

    def decode(self, data: dict[str, Any]) -> Any:
        """A new instance from the stored fields."""
        return self.type(**data)


class RememberedDatetimeAsISO(DatetimeAsISO):
    """The library's ``datetime_iso`` transcoding, byte for byte, with encodings remembered."""

    def encode(self, obj: datetime) -> str:
        """``obj.isoformat()``."""
        return _isoformat(obj, obj.tzinfo, obj.fold)
