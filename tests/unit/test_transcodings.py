"""Our transcodings write exactly what the library's would: a stored snapshot or projected
state must not depend on which process encoded it, nor on what it had encoded before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder
from hypothesis import given
from hypothesis import strategies as st

from application.transcodings import DataclassAsDict, RememberedDatetimeAsISO
from domain.values import SignIn

ZONES = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=1)), timezone(timedelta(0)), ZoneInfo("Europe/Paris")]
)
MOMENTS = st.builds(
    lambda moment, zone, fold: moment.replace(tzinfo=zone, fold=fold),
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)),
    ZONES,
    st.integers(0, 1),
)


@given(st.lists(MOMENTS, min_size=1, max_size=20))
def test_datetimes_encode_as_the_library_encodes_them(moments: list[datetime]) -> None:
    ours, theirs = RememberedDatetimeAsISO(), DatetimeAsISO()
    # twice over, so the second pass answers from what the first remembered, in whatever
    # order equal instants in other zones (or either side of a fold) come
    for moment in moments + moments[::-1]:
        assert ours.encode(moment) == theirs.encode(moment)
    assert ours.name == theirs.name


def test_equal_instants_in_other_zones_keep_their_own_offsets() -> None:
    ours = RememberedDatetimeAsISO()
    utc = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    paris = utc.astimezone(ZoneInfo("Europe/Paris"))
    assert utc == paris
    assert (ours.encode(utc), ours.encode(paris)) == (
        "2026-12-06T12:00:00+00:00",
        "2026-12-06T13:00:00+01:00",
    )


@given(MOMENTS, MOMENTS)
def test_a_sign_in_encodes_as_a_transcoder_of_its_fields_would(
    created: datetime, active: datetime
) -> None:
    sign_in = SignIn(7, 8, "plain_email", created, created, active, active, 9, None)
    ours, plain = JSONTranscoder(), JSONTranscoder()
    ours.register(RememberedDatetimeAsISO())
    ours.register(DataclassAsDict(SignIn, "sign_in"))
    plain.register(DatetimeAsISO())
    fields = {name: getattr(sign_in, name) for name in SignIn.__dataclass_fields__}
    assert ours.encode(sign_in) == plain.encode({"_type_": "sign_in", "_data_": fields})
    assert ours.decode(ours.encode(sign_in)) == sign_in
