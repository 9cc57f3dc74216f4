"""RetryPolicy and interval conversion to their protocol form."""

from datetime import timedelta

import pytest

from invoctl.sdk import RetryPolicy
from invoctl.sdk._durations import to_duration, to_millis
from invoctl.v1 import workers_pb2


def test_defaults_match_the_server_defaults() -> None:
    proto = RetryPolicy().to_proto()
    assert proto.initial_interval.ToTimedelta() == timedelta(milliseconds=500)
    assert proto.factor == 2.0
    assert proto.max_interval.ToTimedelta() == timedelta(seconds=60)
    assert proto.max_attempts == 70
    assert proto.on_max_attempts == workers_pb2.ON_MAX_ATTEMPTS_PAUSE


def test_seconds_and_timedeltas_convert_alike() -> None:
    as_seconds = RetryPolicy(initial_interval=0.25, max_interval=90, factor=1.5, max_attempts=3)
    as_deltas = RetryPolicy(
        initial_interval=timedelta(milliseconds=250),
        max_interval=timedelta(minutes=1.5),
        factor=1.5,
        max_attempts=3,
    )
    assert as_seconds.to_proto() == as_deltas.to_proto()
    assert as_seconds.to_proto().max_interval.seconds == 90


def test_kill_on_max_attempts() -> None:
    proto = RetryPolicy(max_attempts=1, on_max_attempts="kill").to_proto()
    assert proto.on_max_attempts == workers_pb2.ON_MAX_ATTEMPTS_KILL
    assert proto.max_attempts == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_interval": 0},
        {"initial_interval": -1},
        {"initial_interval": 10, "max_interval": 5},
        {"factor": 0.5},
        {"max_attempts": 0},
        {"on_max_attempts": "explode"},
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["1s", True, None])
def test_intervals_must_be_numbers_or_timedeltas(value: object) -> None:
    with pytest.raises(TypeError):
        RetryPolicy(initial_interval=value)  # type: ignore[arg-type]


def test_millis_round_to_nearest() -> None:
    assert to_millis(1.5, "d") == 1500
    assert to_millis(0.0004, "d") == 0
    assert to_millis(timedelta(minutes=2), "d") == 120_000


@pytest.mark.parametrize("value", [-0.001, float("inf"), float("nan")])
def test_negative_or_infinite_intervals_are_refused(value: float) -> None:
    with pytest.raises(ValueError):
        to_millis(value, "delay")


def test_duration_keeps_microseconds() -> None:
    assert to_duration(1.000001, "d").ToTimedelta() == timedelta(seconds=1, microseconds=1)
