// Scenario 3: refusals surface as InvoctlError with the gRPC code and the ErrorInfo reason
// and metadata the server sent, from unary RPCs and from streams alike.

import assert from "node:assert/strict";
import { after, it } from "node:test";

import { Code, InvoctlClient, InvoctlError } from "../../src/index.js";
import { collect, env, rejection } from "./env.js";

const client = new InvoctlClient(env("INVOCTL_SERVER"));
after(() => client.close());

const UNKNOWN_ID = "inv_" + "A".repeat(22);

it("an unknown ID is NOT_FOUND (INVOCATION_NOT_FOUND)", async () => {
  const err = await rejection(client.cancelInvocation(UNKNOWN_ID), InvoctlError);
  assert.equal(err.code, Code.NotFound);
  assert.equal(err.codeName, "NOT_FOUND");
  assert.equal(err.reason, "INVOCATION_NOT_FOUND");
  assert.equal(err.retryable, false);
  assert.match(err.message, /^NOT_FOUND \(INVOCATION_NOT_FOUND\)/);
});

it("a malformed ID is INVALID_ARGUMENT (MALFORMED_ID)", async () => {
  for (const bad of ["not-an-id", "inv_123"]) {
    const err = await rejection(client.getInvocation(bad), InvoctlError);
    assert.equal(err.code, Code.InvalidArgument, bad);
    assert.equal(err.reason, "MALFORMED_ID", bad);
  }
});

it("a wrong state is FAILED_PRECONDITION with the current state in the metadata", async () => {
  const id = env("INVOCTL_COMPLETED_ID");
  const err = await rejection(client.pauseInvocation(id), InvoctlError);
  assert.equal(err.code, Code.FailedPrecondition);
  assert.equal(err.reason, "INVALID_STATE_TRANSITION");
  assert.equal(err.metadata.invocation_id, id);
  assert.equal(err.metadata.state, "completed");
});

it("a refused bulk operation throws from its iterator", async () => {
  const err = await rejection(collect(client.bulkOperation("cancel", {})), InvoctlError);
  assert.equal(err.code, Code.InvalidArgument);
  assert.equal(err.reason, "EMPTY_SELECTOR");
  const bad = await rejection(
    collect(client.bulkOperation("kill", { invocationIds: ["nope"] })),
    InvoctlError,
  );
  assert.equal(bad.reason, "MALFORMED_ID");
});

it("no server at the address is UNAVAILABLE, without a reason, and retryable", async () => {
  const nowhere = new InvoctlClient(env("INVOCTL_DEAD_ADDRESS"));
  try {
    const err = await rejection(nowhere.getInvocation(UNKNOWN_ID), InvoctlError);
    assert.equal(err.code, Code.Unavailable);
    assert.equal(err.reason, "");
    assert.ok(err.retryable);
  } finally {
    nowhere.close();
  }
});
