// Scenario: an invocation whose deployment has no worker connected (Python stopped the
// only one) says whom it waits for, in the field GetInvocation sets.

import assert from "node:assert/strict";
import { after, it } from "node:test";

import { InvoctlClient, stateName } from "../../src/index.js";
import { env } from "./env.js";

const client = new InvoctlClient(env("INVOCTL_SERVER"));
after(() => client.close());

it("says that no worker of its deployment is connected, and since when", async () => {
  const inv = await client.getInvocation(env("INVOCTL_INVOCATION_ID"));
  assert.equal(stateName(inv.state), "ready");
  assert.equal(inv.noWorker?.deploymentId, env("INVOCTL_DEPLOYMENT_ID"));
  assert.ok(inv.noWorker?.lastSeenAt && inv.noWorker.lastSeenAt.seconds > 0n);
});

it("says nothing of the kind for an invocation that completed", async () => {
  const done = await client.getInvocation(env("INVOCTL_COMPLETED_ID"));
  assert.equal(stateName(done.state), "completed");
  assert.equal(done.noWorker, undefined);
});
