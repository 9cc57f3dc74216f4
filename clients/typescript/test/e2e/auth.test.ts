// The token option: sent as `authorization: Bearer <token>`; the server's refusals of a
// missing token and of a role that may not act surface as typed errors.

import assert from "node:assert/strict";
import { it } from "node:test";

import { Code, InvoctlClient, InvoctlError } from "../../src/index.js";
import { env, rejection } from "./env.js";

const UNKNOWN_ID = "inv_" + "A".repeat(22);

async function withClient<T>(token: string | undefined, body: (c: InvoctlClient) => Promise<T>) {
  const client = new InvoctlClient(env("INVOCTL_SERVER"), { token });
  try {
    return await body(client);
  } finally {
    client.close();
  }
}

it("without a token the server answers UNAUTHENTICATED", async () => {
  const err = await withClient(undefined, (c) =>
    rejection(c.getInvocation(UNKNOWN_ID), InvoctlError),
  );
  assert.equal(err.code, Code.Unauthenticated);
  assert.equal(err.reason, "UNAUTHENTICATED");
});

it("a viewer may read but not cancel", async () => {
  await withClient(env("INVOCTL_VIEWER_TOKEN"), async (c) => {
    const read = await rejection(c.getInvocation(UNKNOWN_ID), InvoctlError);
    assert.equal(read.code, Code.NotFound); // past the token check: there is no such invocation
    const cancel = await rejection(c.cancelInvocation(UNKNOWN_ID), InvoctlError);
    assert.equal(cancel.code, Code.PermissionDenied);
    assert.equal(cancel.reason, "PERMISSION_DENIED");
    // Refused, and in the audit log as such (a viewer may read it).
    const { entries } = await c.listAuditEntries({ invocationId: UNKNOWN_ID });
    assert.deepEqual(
      entries.map((e) => [e.operation, e.identity, e.result]),
      [["CancelInvocation", env("INVOCTL_VIEWER_IDENTITY"), "PERMISSION_DENIED"]],
    );
  });
});

it("an operator's cancel reaches the servicer under the operator's identity", async () => {
  await withClient(env("INVOCTL_OPERATOR_TOKEN"), async (c) => {
    const err = await rejection(
      c.cancelInvocation(UNKNOWN_ID, { reason: "ts operator" }),
      InvoctlError,
    );
    assert.equal(err.reason, "INVOCATION_NOT_FOUND");
    const { entries } = await c.listAuditEntries({ invocationId: UNKNOWN_ID });
    assert.deepEqual(
      entries
        .filter((e) => e.identity === env("INVOCTL_OPERATOR_IDENTITY"))
        .map((e) => [e.operation, e.identity, e.reason, e.result]),
      [
        [
          "CancelInvocation",
          env("INVOCTL_OPERATOR_IDENTITY"),
          "ts operator",
          "INVOCATION_NOT_FOUND",
        ],
      ],
    );
  });
});
