// The tls option against a server that wants mutual TLS: a client with the CA and a
// client certificate gets answers; one without its certificate gets no connection.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { it } from "node:test";

import { Code, InvoctlClient, InvoctlError } from "../../src/index.js";
import { env, rejection } from "./env.js";

const UNKNOWN_ID = "inv_" + "A".repeat(22);
const ca = readFileSync(env("INVOCTL_TLS_CA"));

it("with the CA and a client certificate", async () => {
  const client = new InvoctlClient(env("INVOCTL_SERVER"), {
    tls: {
      ca,
      cert: readFileSync(env("INVOCTL_TLS_CERT")),
      key: readFileSync(env("INVOCTL_TLS_KEY")),
    },
  });
  try {
    const err = await rejection(client.getInvocation(UNKNOWN_ID), InvoctlError);
    assert.equal(err.reason, "INVOCATION_NOT_FOUND"); // an answer from the servicer
  } finally {
    client.close();
  }
});

it("without a client certificate", async () => {
  const client = new InvoctlClient(env("INVOCTL_SERVER"), { tls: { ca } });
  try {
    const err = await rejection(client.getInvocation(UNKNOWN_ID), InvoctlError);
    assert.equal(err.code, Code.Unavailable); // no answer: the server refused the connection
    assert.equal(err.reason, "");
    assert.ok(err.retryable);
  } finally {
    client.close();
  }
});
