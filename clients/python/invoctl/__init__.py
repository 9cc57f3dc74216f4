"""invoctl: durable invocations on Postgres with a gRPC control plane.

Subpackages: ``invoctl.sdk`` (handler SDK and worker runtime), ``invoctl.cli`` (the
``invoctl`` command) and ``invoctl.v1`` (generated protocol stubs); the module
``invoctl.wire`` holds what the server and workers share about their stream.
"""
