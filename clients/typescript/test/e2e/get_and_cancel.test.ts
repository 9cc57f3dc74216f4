// Scenario 1: an invocation that Python started (Lab/nap, suspended on a long sleep) is
// read, listed and cancelled from TypeScript. Python then checks how it ended.

import assert from "node:assert/strict";
import { after, it } from "node:test";

import { InvocationState, InvoctlClient, stateName } from "../../src/index.js";
import { env } from "./env.js";

const client = new InvoctlClient(env("INVOCTL_SERVER"));
const id = env("INVOCTL_INVOCATION_ID");
after(() => client.close());

it("reads the invocation Python started", async () => {
  const inv = await client.getInvocation(id);
  assert.equal(inv.id, id);
  assert.equal(inv.target, "Lab/nap");
  assert.equal(stateName(inv.state), "suspended");
  assert.equal(inv.cancelledAt, undefined);
  assert.ok(inv.createdAt && inv.createdAt.seconds > 0n);
});

it("finds it by its filters", async () => {
  const page = await client.listInvocations({
    service: "Lab",
    handler: "nap",
    states: ["suspended"],
  });
  assert.deepEqual(
    page.invocations.map((i) => i.id),
    [id],
  );
  const none = await client.listInvocations({ service: "Lab", states: [InvocationState.PAUSED] });
  assert.deepEqual(none.invocations, []);
});

it("cancels it, once for a retried request ID", async () => {
  const options = { reason: "cancelled from typescript", requestId: "ts-cancel-1" };
  const first = await client.cancelInvocation(id, options);
  assert.equal(first.id, id);
  assert.ok(first.cancelledAt, "the cancellation reached it");
  assert.notEqual(first.state, InvocationState.SUSPENDED); // woken to see the cancellation
  const again = await client.cancelInvocation(id, options);
  assert.deepEqual(again.cancelledAt, first.cancelledAt);
});
