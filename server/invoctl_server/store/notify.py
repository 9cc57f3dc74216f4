"""Channels of the notifications transition.py sends at commit (see its statements)."""

COMPLETED = "invoctl_completed"  # payload: the invocation ID; wakes attached clients
READY = "invoctl_ready"  # wakes dispatchers
SIGNAL = "invoctl_signal"  # payload: session_id invocation_id attempt kind
