"""Handler registration, argument binding and deployment definitions."""

from datetime import timedelta
from typing import Any

import pytest

from invoctl.sdk import RetryPolicy, Service, TerminalError, VirtualObject, Worker
from invoctl.sdk._service import decode_input, takes_argument
from invoctl.v1 import workers_pb2


async def with_arg(ctx: Any, arg: Any) -> None: ...
async def ctx_only(ctx: Any) -> None: ...
async def with_default(ctx: Any, arg: Any = None) -> None: ...
async def variadic(ctx: Any, *args: Any) -> None: ...
async def optional_extra(ctx: Any, arg: Any, verbose: bool = False) -> None: ...
async def optional_keyword(ctx: Any, *, trace: bool = False) -> None: ...


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (with_arg, True),
        (ctx_only, False),
        (with_default, True),
        (variadic, True),
        (optional_extra, True),
        (optional_keyword, False),
    ],
)
def test_argument_binding(fn: Any, expected: bool) -> None:
    assert takes_argument(fn) is expected


async def no_params() -> None: ...
async def two_args(ctx: Any, a: Any, b: Any) -> None: ...
async def required_keyword(ctx: Any, *, b: Any) -> None: ...


@pytest.mark.parametrize("fn", [no_params, two_args, required_keyword])
def test_unbindable_handlers_are_refused(fn: Any) -> None:
    with pytest.raises(TypeError):
        takes_argument(fn)


@pytest.mark.parametrize(
    ("text", "value"), [("", None), ("null", None), ('{"a": [1]}', {"a": [1]}), ('"x"', "x")]
)
def test_decode_input(text: str, value: Any) -> None:
    assert decode_input(text) == value


def test_invalid_input_is_terminal() -> None:
    with pytest.raises(TerminalError):
        decode_input("{not json")


def test_handler_decorator_forms() -> None:
    svc = Service("Greeter")

    @svc.handler()
    async def greet(ctx: Any, name: str) -> str:
        return name

    @svc.handler
    async def ping(ctx: Any) -> None: ...

    @svc.handler(name="hello", retry_policy=RetryPolicy(max_attempts=3))
    async def other(ctx: Any, name: str) -> str:
        return name

    assert list(svc.handlers) == ["greet", "ping", "hello"]
    assert svc.handlers["greet"].fn is greet  # the decorator returns the function
    assert svc.handlers["greet"].takes_arg and not svc.handlers["ping"].takes_arg
    assert svc.handlers["hello"].retry_policy == RetryPolicy(max_attempts=3)


def test_sync_handlers_and_duplicate_names_are_refused() -> None:
    svc = Service("S")
    with pytest.raises(TypeError):
        svc.handler()(lambda ctx: None)

    @svc.handler()
    async def h(ctx: Any) -> None: ...

    with pytest.raises(ValueError):
        svc.handler(name="h")(ctx_only)


@pytest.mark.parametrize("name", ["", "a/b"])
def test_invalid_service_names(name: str) -> None:
    with pytest.raises(ValueError):
        Service(name)


def test_object_definition() -> None:
    cart = VirtualObject("CartObject", retention=timedelta(hours=1))

    @cart.handler()
    async def add(ctx: Any, item: str) -> None: ...

    @cart.handler(shared=True)
    async def items(ctx: Any) -> list[str]:
        return []

    definition = cart.to_proto()
    assert definition.name == "CartObject"
    assert definition.kind == workers_pb2.SERVICE_KIND_VIRTUAL_OBJECT
    assert [(h.name, h.shared) for h in definition.handlers] == [("add", False), ("items", True)]
    assert definition.retention.ToTimedelta() == timedelta(hours=1)
    assert not definition.HasField("retry_policy")  # unset: the server's defaults


def test_worker_retry_policy_applies_to_services_without_one() -> None:
    plain, tuned = Service("Plain"), Service("Tuned", retry_policy=RetryPolicy(max_attempts=5))
    for svc in (plain, tuned):
        svc.handler(name="h")(ctx_only)
    handler_policy = RetryPolicy(max_attempts=2)
    plain.handler(name="special", retry_policy=handler_policy)(ctx_only)

    request = Worker([plain, tuned], retry_policy=RetryPolicy(max_attempts=9)).deployment_request()

    by_name = {s.name: s for s in request.services}
    assert by_name["Plain"].kind == workers_pb2.SERVICE_KIND_SERVICE
    assert by_name["Plain"].retry_policy.max_attempts == 9
    assert by_name["Tuned"].retry_policy.max_attempts == 5
    handlers = {h.name: h for h in by_name["Plain"].handlers}
    assert not handlers["h"].HasField("retry_policy")
    assert handlers["special"].retry_policy == handler_policy.to_proto()


def test_worker_refuses_bad_configuration() -> None:
    svc = Service("S")
    svc.handler(name="h")(ctx_only)
    with pytest.raises(ValueError):
        Worker([])
    with pytest.raises(ValueError):
        Worker([svc, svc])
    with pytest.raises(ValueError):
        Worker([svc], max_concurrency=0)


def test_a_service_without_handlers_cannot_be_registered() -> None:
    with pytest.raises(ValueError):
        Service("Empty").to_proto()
