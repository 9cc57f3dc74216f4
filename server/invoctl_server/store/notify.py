"""Channels of the notifications every server's listener takes: transition.py sends the
first two from its statements, operations.py the signals, bulk.py the progress of bulk
operations. All are delivered at commit."""

COMPLETED = "invoctl_completed"  # payload: the invocation ID; wakes attached clients
READY = "invoctl_ready"  # wakes dispatchers
SIGNAL = "invoctl_signal"  # payload: session_id invocation_id attempt kind
BULK = "invoctl_bulk"  # payload: a bulk operation ID whose counts or state changed
