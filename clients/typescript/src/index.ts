// invoctl's TypeScript client: the generated messages and services of protos/invoctl/v1,
// and InvoctlClient, a thin typed wrapper over the InvocationControl service.

export * from "./client.js";
export * from "./errors.js";
export * from "./names.js";
export * from "./gen/invoctl/v1/bulk_pb.js";
export * from "./gen/invoctl/v1/control_pb.js";
export * from "./gen/invoctl/v1/ingress_pb.js";
export * from "./gen/invoctl/v1/invocation_pb.js";
