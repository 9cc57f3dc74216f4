// Unit tests of the parts of the client that need no server: decoding ErrorInfo, code
// names, state names, selectors and addresses.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";

import {
  BulkOperationKind,
  InvocationState,
  InvoctlClient,
  InvoctlError,
  Outcome,
  baseUrlOf,
  bulkKindName,
  codeName,
  decodeErrorInfo,
  outcomeName,
  parseState,
  selector,
  stateName,
  toInvoctlError,
} from "../../src/index.js";

function errorInfoBytes(reason: string, domain: string, metadata: Record<string, string>) {
  const w = new BinaryWriter();
  w.tag(1, 2).string(reason);
  w.tag(2, 2).string(domain);
  for (const [key, value] of Object.entries(metadata)) {
    w.tag(3, 2).fork().tag(1, 2).string(key).tag(2, 2).string(value).join();
  }
  w.tag(99, 0).uint32(7); // a field a newer ErrorInfo might add: skipped
  return w.finish();
}

describe("ErrorInfo", () => {
  it("decodes reason, domain and metadata, skipping unknown fields", () => {
    const bytes = errorInfoBytes("INVOCATION_NOT_FOUND", "invoctl", {
      invocation_id: "inv_x",
      state: "completed",
    });
    assert.deepEqual(decodeErrorInfo(bytes), {
      reason: "INVOCATION_NOT_FOUND",
      domain: "invoctl",
      metadata: { invocation_id: "inv_x", state: "completed" },
    });
  });

  it("makes an InvoctlError from a ConnectError's details", () => {
    const cause = new ConnectError("no such invocation", Code.NotFound);
    cause.details = [
      { type: "google.rpc.DebugInfo", value: new Uint8Array([10, 1, 120]) },
      {
        type: "google.rpc.ErrorInfo",
        value: errorInfoBytes("INVOCATION_NOT_FOUND", "d", { a: "b" }),
      },
    ];
    const err = InvoctlError.fromConnectError(cause);
    assert.ok(err instanceof Error && err instanceof InvoctlError);
    assert.equal(err.code, Code.NotFound);
    assert.equal(err.codeName, "NOT_FOUND");
    assert.equal(err.reason, "INVOCATION_NOT_FOUND");
    assert.deepEqual(err.metadata, { a: "b" });
    assert.equal(err.domain, "d");
    assert.equal(err.rawMessage, "no such invocation");
    assert.equal(err.message, "NOT_FOUND (INVOCATION_NOT_FOUND): no such invocation");
    assert.equal(err.cause, cause);
    assert.equal(err.retryable, false);
  });

  it("leaves the reason empty without an ErrorInfo; only UNAVAILABLE is retryable", () => {
    const err = InvoctlError.fromConnectError(
      new ConnectError("connection refused", Code.Unavailable),
    );
    assert.equal(err.reason, "");
    assert.equal(err.message, "UNAVAILABLE: connection refused");
    assert.equal(err.retryable, true);
  });

  it("reports a connection closed under an RPC as UNAVAILABLE, not as CANCELED", () => {
    const reset = () =>
      new ConnectError("http/2 stream closed with error code CANCEL (0x8)", Code.Canceled);
    const closed = toInvoctlError(reset());
    assert.ok(closed instanceof InvoctlError);
    assert.equal(closed.code, Code.Unavailable);
    assert.ok(closed.retryable);
    // The caller aborted it: CANCELED.
    const aborted = toInvoctlError(reset(), AbortSignal.abort());
    assert.ok(aborted instanceof InvoctlError);
    assert.equal(aborted.code, Code.Canceled);
    // The server answered CANCELLED: CANCELED.
    const answered = new ConnectError("cancelled", Code.Canceled, { "grpc-status": "1" });
    assert.equal((toInvoctlError(answered) as InvoctlError).code, Code.Canceled);
    // Anything that is not an RPC failure passes through.
    const bug = new TypeError("a bug");
    assert.equal(toInvoctlError(bug), bug);
  });

  it("names codes as gRPC does", () => {
    assert.equal(codeName(Code.InvalidArgument), "INVALID_ARGUMENT");
    assert.equal(codeName(Code.FailedPrecondition), "FAILED_PRECONDITION");
    assert.equal(codeName(Code.DeadlineExceeded), "DEADLINE_EXCEEDED");
    assert.equal(codeName(42 as Code), "CODE_42");
  });
});

describe("names", () => {
  it("spells states, outcomes and kinds as operators do", () => {
    assert.equal(stateName(InvocationState.BACKING_OFF), "backing-off");
    assert.equal(stateName(99 as InvocationState), "unknown(99)");
    assert.equal(outcomeName(Outcome.CANCELLED), "cancelled");
    assert.equal(bulkKindName(BulkOperationKind.RESTART_AS_NEW), "restart-as-new");
  });

  it("parses state names and values, and refuses the rest", () => {
    assert.equal(parseState("backing-off"), InvocationState.BACKING_OFF);
    assert.equal(parseState("BACKING_OFF"), InvocationState.BACKING_OFF);
    assert.equal(parseState("INVOCATION_STATE_SUSPENDED"), InvocationState.SUSPENDED);
    assert.equal(parseState(InvocationState.PAUSED), InvocationState.PAUSED);
    for (const bad of ["unspecified", "asleep", "", "toString", 0, 99, 1.5]) {
      assert.throws(() => parseState(bad as string), RangeError, String(bad));
    }
  });
});

describe("selector", () => {
  it("builds a BulkSelector from names and dates", () => {
    const at = new Date("2026-11-22T08:00:00.250Z");
    const s = selector({
      query: "Greeter/greet",
      states: ["suspended", "backing-off"],
      createdBefore: at,
    });
    assert.equal(s.$typeName, "invoctl.v1.BulkSelector");
    assert.equal(s.query, "Greeter/greet");
    assert.deepEqual(s.states, [InvocationState.SUSPENDED, InvocationState.BACKING_OFF]);
    assert.equal(s.createdBefore?.seconds, BigInt(Math.floor(at.getTime() / 1000)));
    assert.equal(s.createdBefore?.nanos, 250_000_000);
    assert.equal(s.createdAfter, undefined);
  });
});

describe("InvoctlClient", () => {
  it("dials plaintext, TLS, or the URL it is given", () => {
    assert.equal(baseUrlOf("127.0.0.1:9090", false), "http://127.0.0.1:9090");
    assert.equal(baseUrlOf("invoctl.internal:9090", true), "https://invoctl.internal:9090");
    assert.equal(baseUrlOf("https://[::1]:9090/", false), "https://[::1]:9090");
  });

  it("refuses a deployment for a bulk operation that takes none, before any RPC", () => {
    const client = new InvoctlClient("127.0.0.1:1");
    try {
      assert.throws(
        () => client.bulkOperation("cancel", { query: "Lab" }, { deployment: "latest" }),
        TypeError,
      );
      assert.throws(
        () => client.bulkOperation("frobnicate" as "cancel", { query: "Lab" }),
        TypeError,
      );
    } finally {
      client.close();
    }
  });
});
