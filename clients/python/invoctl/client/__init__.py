"""The typed async Python client of invoctl.

from invoctl.client import Client

async with Client("127.0.0.1:9090") as c:
    greeting = await c.invoke("Greeter", "greet", "Ada")
    inv_id = await c.send("CartObject", "add", {"sku": 1}, key="cart55", delay=10)
    async for inv in c.iter_invocations(states=["suspended", "backing-off"]):
        ...
"""

from ._bulk import BULK_OPERATIONS, selector
from ._client import DEFAULT_ADDRESS, Client, invoke_request, output_of
from ._errors import InvocationFailed, InvoctlError, error_from_rpc_error
from ._names import (
    OUTCOME_NAMES,
    STATE_NAMES,
    StateLike,
    bulk_kind_name,
    bulk_state_name,
    journal_entry_kind_name,
    outcome_name,
    parse_outcome,
    parse_state,
    service_kind_name,
    state_name,
)
from ._targets import ParsedTarget, format_target, parse_target
from ._tls import tls_credentials

__all__ = [
    "BULK_OPERATIONS",
    "DEFAULT_ADDRESS",
    "OUTCOME_NAMES",
    "STATE_NAMES",
    "Client",
    "InvocationFailed",
    "InvoctlError",
    "ParsedTarget",
    "StateLike",
    "bulk_kind_name",
    "bulk_state_name",
    "error_from_rpc_error",
    "format_target",
    "invoke_request",
    "journal_entry_kind_name",
    "outcome_name",
    "output_of",
    "parse_outcome",
    "parse_state",
    "parse_target",
    "selector",
    "service_kind_name",
    "state_name",
    "tls_credentials",
]
