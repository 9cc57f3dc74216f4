"""Health checking and server reflection are on, so grpcurl and `buf curl` work."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


async def test_health_reports_serving_for_the_server_and_each_service(server):
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in (
            "",
            "invoctl.v1.InvocationControl",
            "invoctl.v1.Ingress",
            "invoctl.v1.Workers",
        ):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name


async def test_health_watch_streams_the_status(server):
    # Health's Watch writes with context.write; the tracing interceptor only iterates
    # generators, so the server adapts it (api/auth.py). Without that it failed.
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        stream = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        first = await stream.read()
        stream.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(server):
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        reply = await anext(aiter(responses))
        names = {s.name for s in reply.list_services_response.service}
    assert {"invoctl.v1.InvocationControl", "invoctl.v1.Ingress", "invoctl.v1.Workers"} <= names
