"""convert.ts builds Timestamps by hand (it is on every response's path): it must give
exactly what protobuf's own Timestamp.FromDatetime gives, before and after the epoch and
whatever the offset."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2

from invoctl_server.api.convert import ts

MOMENTS = [
    datetime(2026, 12, 1, 15, 4, 5, 123456, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1901, 5, 1, 3, 4, 5, 1, tzinfo=UTC),
    datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=-8))),
    datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=8))),
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_ts_is_protobufs_own_conversion(moment):
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(moment)
    assert ts(moment) == expected
    assert ts(moment).ToDatetime(tzinfo=UTC) == moment


def test_no_time_is_no_timestamp():
    assert ts(None) is None
