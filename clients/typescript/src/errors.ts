// The client's error: a failed RPC with its gRPC code and the server's google.rpc.ErrorInfo.
//
// The server answers every failed RPC with a google.rpc.Status in the
// `grpc-status-details-bin` trailer, holding a google.rpc.ErrorInfo whose reason is a
// stable UPPER_SNAKE string (INVOCATION_NOT_FOUND, MALFORMED_ID, ...). Connect parses
// the Status and keeps each detail as a type URL and its bytes; the ErrorInfo is decoded
// here from those bytes (three fields), so that no copy of googleapis' protos is needed.

import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

export { Code };

const ERROR_INFO_TYPE = "google.rpc.ErrorInfo";

/** google.rpc.ErrorInfo: why a request failed, in a form code can branch on. */
export interface ErrorInfo {
  /** Stable UPPER_SNAKE reason, for example `INVOCATION_NOT_FOUND`. */
  reason: string;
  /** The service that produced the error. */
  domain: string;
  /** Details, for example the invocation ID and its current state. */
  metadata: Record<string, string>;
}

/**
 * Decodes the bytes of a google.rpc.ErrorInfo
 * (`string reason = 1; string domain = 2; map<string, string> metadata = 3;`).
 * Unknown fields are skipped, as protobuf requires.
 */
export function decodeErrorInfo(bytes: Uint8Array): ErrorInfo {
  const info: ErrorInfo = { reason: "", domain: "", metadata: {} };
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) {
      info.reason = reader.string();
    } else if (field === 2 && wireType === WireType.LengthDelimited) {
      info.domain = reader.string();
    } else if (field === 3 && wireType === WireType.LengthDelimited) {
      // A map entry is a message { string key = 1; string value = 2; }.
      const end = reader.pos + reader.uint32();
      let key = "";
      let value = "";
      while (reader.pos < end) {
        const [entryField, entryWireType] = reader.tag();
        if (entryField === 1 && entryWireType === WireType.LengthDelimited) {
          key = reader.string();
        } else if (entryField === 2 && entryWireType === WireType.LengthDelimited) {
          value = reader.string();
        } else {
          reader.skip(entryWireType, entryField);
        }
      }
      info.metadata[key] = value;
    } else {
      reader.skip(wireType, field);
    }
  }
  return info;
}

/** The gRPC name of a code, as the server and the Python client spell it: `NOT_FOUND`. */
export function codeName(code: Code): string {
  const name = Code[code] as string | undefined; // Connect's names: NotFound, ...
  if (name === undefined) {
    return `CODE_${code}`;
  }
  return name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/**
 * A failed RPC, decoded. Branch on `code` and `reason`, never on the message.
 *
 * `reason` is "" when the failure did not come from invoctl's servicers (a proxy, a
 * connection that could not be made). Only `Code.Unavailable` is worth a retry
 * (`retryable`): every other code is an answer about the request itself.
 */
export class InvoctlError extends Error {
  override name = "InvoctlError";
  /** The gRPC status code (Connect's `Code`, numerically the gRPC code). */
  readonly code: Code;
  /** `ErrorInfo.reason`, for example `INVOCATION_NOT_FOUND`; "" if there was none. */
  readonly reason: string;
  /** `ErrorInfo.metadata`, for example `{ invocation_id, state }`. */
  readonly metadata: Record<string, string>;
  /** `ErrorInfo.domain`. */
  readonly domain: string;
  /** The server's message, without the code and reason. */
  readonly rawMessage: string;

  constructor(
    code: Code,
    reason = "",
    rawMessage = "",
    metadata: Record<string, string> = {},
    options: { domain?: string; cause?: unknown } = {},
  ) {
    const head = reason ? `${codeName(code)} (${reason})` : codeName(code);
    super(rawMessage ? `${head}: ${rawMessage}` : head, { cause: options.cause });
    this.code = code;
    this.reason = reason;
    this.rawMessage = rawMessage;
    this.metadata = { ...metadata };
    this.domain = options.domain ?? "";
  }

  /** The code's gRPC name, for example `NOT_FOUND`. */
  get codeName(): string {
    return codeName(this.code);
  }

  /** Whether the same request may succeed if retried: only for UNAVAILABLE. */
  get retryable(): boolean {
    return this.code === Code.Unavailable;
  }

  /** Decodes a ConnectError (the `cause` keeps it, with every detail). */
  static fromConnectError(err: ConnectError): InvoctlError {
    let info: ErrorInfo | undefined;
    for (const detail of err.details) {
      if ("type" in detail && detail.type === ERROR_INFO_TYPE) {
        info = decodeErrorInfo(detail.value);
        break;
      }
    }
    return new InvoctlError(err.code, info?.reason ?? "", err.rawMessage, info?.metadata ?? {}, {
      domain: info?.domain,
      cause: err,
    });
  }
}

/**
 * An RPC's failure as an InvoctlError; anything that is not an RPC failure as it is.
 *
 * Node reports a connection that closed under an RPC (a server that went away, a TLS
 * peer that refused the client's certificate) as an HTTP/2 stream reset with code
 * CANCEL, which Connect maps to CANCELED. Unless the caller aborted the RPC (`signal`)
 * or the server answered CANCELLED itself (a grpc-status trailer), that is UNAVAILABLE,
 * as gRPC has it and as the Python client reports it: the request got no answer.
 */
export function toInvoctlError(err: unknown, signal?: AbortSignal): unknown {
  if (!(err instanceof ConnectError)) {
    return err;
  }
  if (err.code === Code.Canceled && !signal?.aborted && !err.metadata.has("grpc-status")) {
    const message = `the connection closed before the server answered (${err.rawMessage})`;
    return new InvoctlError(Code.Unavailable, "", message, {}, { cause: err });
  }
  return InvoctlError.fromConnectError(err);
}
