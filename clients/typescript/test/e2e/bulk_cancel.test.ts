// Scenario 2: a bulk cancel over invocations Python made (Lab/nap, suspended), its
// progress consumed from TypeScript as an async iterator. Python then checks that each
// one ended cancelled by this bulk operation.

import assert from "node:assert/strict";
import { after, it } from "node:test";

import {
  BulkOperationKind,
  BulkOperationState,
  InvoctlClient,
  type BulkOperationProgress,
} from "../../src/index.js";
import { collect, env } from "./env.js";

const client = new InvoctlClient(env("INVOCTL_SERVER"));
const ids = env("INVOCTL_INVOCATION_IDS").split(",");
const matched = BigInt(ids.length);
const where = { query: "Lab/nap", states: ["suspended" as const] };
after(() => client.close());

const COUNTS = ["matched", "processed", "succeeded", "skipped", "failed"] as const;

it("counts and samples in a dry run", async () => {
  const [only, ...rest] = await collect(client.bulkOperation("cancel", where, { dryRun: true }));
  assert.deepEqual(rest, []);
  assert.ok(only.final);
  assert.equal(only.state, BulkOperationState.DRY_RUN);
  assert.equal(only.matched, matched);
  assert.equal(only.bulkOperationId, "");
  assert.deepEqual(only.sampleInvocationIds, [...ids].sort().slice(0, 20));
});

let last: BulkOperationProgress | undefined;

it("streams progress whose counts only grow, to a final message", async () => {
  const seen: BulkOperationProgress[] = [];
  // A rate limit spreads the work over a second or so: several messages, not one.
  const progress = client.bulkOperation("cancel", where, {
    reason: "bulk from typescript",
    requestId: "ts-bulk-1",
    maxPerSecond: 40,
  });
  for await (const p of progress) {
    const before = seen.at(-1);
    if (before) {
      assert.ok(!before.final, "only the last message is final");
      for (const field of COUNTS) {
        assert.ok(p[field] >= before[field], `${field} went from ${before[field]} to ${p[field]}`);
      }
    }
    seen.push(p);
  }
  assert.ok(seen.length >= 2, `${seen.length} progress message(s)`);
  last = seen.at(-1)!;
  assert.ok(last.final);
  assert.equal(last.state, BulkOperationState.COMPLETED);
  assert.equal(last.kind, BulkOperationKind.CANCEL);
  assert.match(last.bulkOperationId, /^bulk_/);
  assert.equal(last.matched, matched);
  assert.equal(last.processed, last.matched);
  assert.equal(last.succeeded, matched);
  assert.equal(last.skipped + last.failed, 0n);
  assert.equal(last.reason, "bulk from typescript");
  assert.equal(last.selector?.query, "Lab/nap");
});

it("re-attaches to the finished operation by its ID and by its request ID", async () => {
  assert.ok(last, "the bulk operation ran");
  const watched = await collect(client.watchBulkOperation(last.bulkOperationId));
  const final = watched.at(-1)!;
  assert.ok(final.final);
  assert.equal(final.bulkOperationId, last.bulkOperationId);
  assert.equal(final.processed, matched);
  const again = await collect(client.bulkOperation("cancel", where, { requestId: "ts-bulk-1" }));
  assert.equal(again.at(-1)!.bulkOperationId, last.bulkOperationId);
});

it("lists one job: the re-attach started none", async () => {
  const { bulkOperations } = await client.listBulkOperations();
  assert.deepEqual(
    bulkOperations.map((b) => b.bulkOperationId),
    [last!.bulkOperationId],
  );
});
