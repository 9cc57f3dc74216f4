// Scenario 4: a cancel sent with a W3C traceparent joins that trace. Python chose the
// trace; it then checks that the cancelled transition's history row carries its ID.

import assert from "node:assert/strict";
import { after, it } from "node:test";

import { InvoctlClient } from "../../src/index.js";
import { env } from "./env.js";

const traceparent = env("INVOCTL_TRACEPARENT");
let asked = 0;
const client = new InvoctlClient(env("INVOCTL_SERVER"), {
  // A function, as a caller with OpenTelemetry would pass (propagation.inject per RPC).
  traceparent: () => {
    asked += 1;
    return traceparent;
  },
});
after(() => client.close());

it("cancels in the caller's trace", async () => {
  const inv = await client.cancelInvocation(env("INVOCTL_INVOCATION_ID"), { reason: "traced" });
  assert.ok(inv.cancelledAt);
  assert.equal(asked, 1);
});

it("a per-call traceparent wins over the client's", async () => {
  const inv = await client.cancelInvocation(env("INVOCTL_OTHER_INVOCATION_ID"), {
    traceparent: env("INVOCTL_OTHER_TRACEPARENT"),
  });
  assert.ok(inv.cancelledAt);
  assert.equal(asked, 1);
});
