"""invoctl server: durable invocations on Postgres with a gRPC control plane."""
