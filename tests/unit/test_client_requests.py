"""Building InvokeRequests from Python values."""

import datetime as dt

import pytest

from invoctl.client import invoke_request
from invoctl.v1 import ingress_pb2


def test_call_defaults() -> None:
    call = invoke_request("Greeter", "greet")
    assert call.mode == ingress_pb2.INVOKE_MODE_CALL
    assert call.input == ""  # the contract's "null"
    assert call.target.key == ""
    assert not call.HasField("delay")


def test_send_with_key_headers_and_delay() -> None:
    send = invoke_request(
        "Cart",
        "add",
        {"sku": 1},
        key="cart55",
        headers={"x-tenant": "acme"},
        idempotency_key="k1",
        send=True,
        delay=dt.timedelta(milliseconds=1500),
    )
    assert send.mode == ingress_pb2.INVOKE_MODE_SEND
    assert send.input == '{"sku": 1}'
    assert (send.target.service, send.target.key, send.target.handler) == ("Cart", "cart55", "add")
    assert dict(send.headers) == {"x-tenant": "acme"}
    assert send.idempotency_key == "k1"
    assert send.delay.ToMilliseconds() == 1500


def test_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        invoke_request("Greeter", "greet", send=True, delay=-1)
