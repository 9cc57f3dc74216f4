// A thin typed client over invoctl's InvocationControl service: the generated Connect
// client on a gRPC (HTTP/2) transport, with a token, TLS, W3C trace context, and errors
// decoded into InvoctlError.

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import {
  BulkSelectorSchema,
  CancelInvocationsRequestSchema,
  KillInvocationsRequestSchema,
  PauseInvocationsRequestSchema,
  PurgeInvocationsRequestSchema,
  RestartInvocationsAsNewRequestSchema,
  ResumeInvocationsRequestSchema,
  type BulkOperationProgress,
  type BulkOperationState,
  type BulkSelector,
} from "./gen/invoctl/v1/bulk_pb.js";
import {
  InvocationControl,
  type AuditEntry,
  type GetJournalResponse,
} from "./gen/invoctl/v1/control_pb.js";
import type { Invocation } from "./gen/invoctl/v1/invocation_pb.js";
import { toInvoctlError } from "./errors.js";
import { parseState, type StateLike } from "./names.js";

/** Where `invoctl serve` listens by default. */
export const DEFAULT_ADDRESS = "127.0.0.1:9090";

/** PEM contents (not paths), as Node's TLS options take them. */
export interface TlsOptions {
  /** The CA to trust for the server's certificate; the system's CAs when omitted. */
  ca?: string | Buffer;
  /** The client certificate, for mutual TLS. */
  cert?: string | Buffer;
  /** The client certificate's key, for mutual TLS. */
  key?: string | Buffer;
  /** The name the server certificate must carry, when it is not the dialled host. */
  servername?: string;
}

/** Options of an InvoctlClient. */
export interface ClientOptions {
  /** Bearer token, sent as `authorization: Bearer <token>` on every RPC. */
  token?: string;
  /** TLS: `true` for the system's CAs, or a CA and a client certificate. Plaintext when
   * omitted (the loopback default); an `https://` address also turns TLS on. */
  tls?: boolean | TlsOptions;
  /**
   * W3C trace context for every RPC: a `traceparent` value, or a function called per RPC
   * that returns one (or undefined for none). The server's spans and the history rows of
   * the transitions an RPC causes then belong to that trace.
   */
  traceparent?: string | (() => string | undefined);
  /** Deadline of RPCs that answer at once, in ms (default 30 000; 0: none). Streams of
   * bulk operations have none. */
  timeoutMs?: number;
  /** More Connect interceptors, run after the client's own. */
  interceptors?: Interceptor[];
}

/** Options of one RPC. */
export interface CallOptions {
  /** Aborts the RPC (a stream too). */
  signal?: AbortSignal;
  /** Deadline of this RPC in ms, instead of the client's. */
  timeoutMs?: number;
  /** `traceparent` of this RPC, instead of the client's. */
  traceparent?: string;
}

/** Options of an operator request. */
export interface RequestOptions extends CallOptions {
  /** Why, for the audit log. */
  reason?: string;
  /** A retried request with the same ID returns the first answer and acts once. */
  requestId?: string;
}

/** Options of ResumeInvocation. */
export interface ResumeOptions extends RequestOptions {
  /** `keep` (default), `latest`, or a `dp_...` deployment serving the handler. */
  deployment?: string;
}

/** Options of RestartInvocationAsNew. */
export interface RestartOptions extends RequestOptions {
  /** Replay journal entries before this index, then run live; 0 (default) keeps none. */
  fromEntry?: number;
  /** `latest` (default), `keep`, or a `dp_...` deployment serving the handler. */
  deployment?: string;
}

/** Filters of ListInvocations; they combine with AND. */
export interface InvocationFilters {
  service?: string;
  handler?: string;
  key?: string;
  states?: StateLike[];
  deploymentId?: string;
  /** Default 100, at most 1000. */
  pageSize?: number;
  pageToken?: string;
}

/** A page of invocations, newest first. */
export interface InvocationPage {
  invocations: Invocation[];
  /** Empty on the last page. */
  nextPageToken: string;
}

/** The bulk operations, as the CLI spells them. */
export type BulkKind = "cancel" | "kill" | "pause" | "resume" | "purge" | "restart-as-new";

/** Which invocations a bulk operation acts on; the fields combine with AND. */
export interface SelectorInit {
  /** `Greeter`, `Greeter/greet`, `CartObject/cart55`, `CartObject/cart55/add` or `inv_...`. */
  query?: string;
  service?: string;
  handler?: string;
  key?: string;
  states?: StateLike[];
  deploymentId?: string;
  createdBefore?: Date;
  createdAfter?: Date;
  /** At most 10 000. */
  invocationIds?: string[];
}

/** Options of a bulk operation. */
export interface BulkOptions extends RequestOptions {
  /** Count and sample the matches; change nothing. */
  dryRun?: boolean;
  /** Invocations per second at most; 0 (default) = as fast as it goes. */
  maxPerSecond?: number;
  /** resume and restart-as-new only: `keep`, `latest` or a `dp_...` deployment. */
  deployment?: string;
}

/** A BulkSelector message from friendly fields (state names, Dates). */
export function selector(init: SelectorInit = {}): BulkSelector {
  return create(BulkSelectorSchema, {
    query: init.query ?? "",
    service: init.service ?? "",
    handler: init.handler ?? "",
    key: init.key ?? "",
    states: (init.states ?? []).map(parseState),
    deploymentId: init.deploymentId ?? "",
    createdBefore: init.createdBefore ? timestampFromDate(init.createdBefore) : undefined,
    createdAfter: init.createdAfter ? timestampFromDate(init.createdAfter) : undefined,
    invocationIds: init.invocationIds ?? [],
  });
}

/** `host:port` -> a base URL; an address with a scheme is kept as it is. */
export function baseUrlOf(address: string, tls: boolean): string {
  if (address.includes("://")) {
    return address.replace(/\/+$/, "");
  }
  return `${tls ? "https" : "http"}://${address}`;
}

function must<T>(value: T | undefined, what: string): T {
  if (value === undefined) {
    throw new Error(`the server's response has no ${what}`);
  }
  return value;
}

/**
 * A server stream that starts when it is first iterated, and throws its RPC's failure as
 * an InvoctlError. Leaving the loop early ends the RPC.
 */
async function* decoded<T>(
  open: () => AsyncIterable<T>,
  signal: AbortSignal | undefined,
): AsyncGenerator<T, void, undefined> {
  try {
    yield* open();
  } catch (err) {
    throw toInvoctlError(err, signal);
  }
}

/**
 * An invoctl control-plane client over gRPC (HTTP/2).
 *
 * Every RPC failure is thrown as an InvoctlError with the gRPC code and the server's
 * ErrorInfo reason. The client never retries by itself (see `InvoctlError.retryable`).
 * Call `close()` when done; an idle connection does not keep Node running.
 */
export class InvoctlClient {
  /** The generated Connect client, for the RPCs this wrapper does not cover. */
  readonly control: Client<typeof InvocationControl>;
  /** The transport, to make other generated clients (the Ingress service, say). */
  readonly transport: Transport;
  private readonly session: Http2SessionManager;
  private readonly timeoutMs: number;

  constructor(address: string = DEFAULT_ADDRESS, options: ClientOptions = {}) {
    const tls =
      options.tls === true || typeof options.tls === "object" || address.startsWith("https://");
    const baseUrl = baseUrlOf(address, tls);
    const tlsOptions = typeof options.tls === "object" ? options.tls : {};
    this.session = new Http2SessionManager(baseUrl, {}, tlsOptions);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    const token = options.token;
    const traceparent = options.traceparent;
    const headers: Interceptor = (next) => async (req) => {
      if (token && !req.header.has("authorization")) {
        req.header.set("authorization", `Bearer ${token}`);
      }
      if (traceparent !== undefined && !req.header.has("traceparent")) {
        const value = typeof traceparent === "function" ? traceparent() : traceparent;
        if (value) {
          req.header.set("traceparent", value);
        }
      }
      return next(req);
    };
    this.transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.session,
      interceptors: [headers, ...(options.interceptors ?? [])],
    });
    this.control = createClient(InvocationControl, this.transport);
  }

  /** Closes the connection; RPCs still running fail. */
  close(): void {
    this.session.abort();
  }

  private options(call: CallOptions, stream = false) {
    const timeoutMs = call.timeoutMs ?? (stream ? 0 : this.timeoutMs);
    return {
      signal: call.signal,
      timeoutMs: timeoutMs > 0 ? timeoutMs : undefined,
      headers: call.traceparent ? { traceparent: call.traceparent } : undefined,
    };
  }

  private async unary<T>(call: () => Promise<T>, options: CallOptions): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw toInvoctlError(err, options.signal);
    }
  }

  private request(invocationId: string, options: RequestOptions) {
    return { invocationId, reason: options.reason ?? "", requestId: options.requestId ?? "" };
  }

  /** One invocation. */
  async getInvocation(invocationId: string, options: CallOptions = {}): Promise<Invocation> {
    const resp = await this.unary(
      () => this.control.getInvocation({ invocationId }, this.options(options)),
      options,
    );
    return must(resp.invocation, "invocation");
  }

  /** A page of the invocations that match the filters, newest first. */
  async listInvocations(
    filters: InvocationFilters = {},
    options: CallOptions = {},
  ): Promise<InvocationPage> {
    const request = {
      service: filters.service ?? "",
      handler: filters.handler ?? "",
      key: filters.key ?? "",
      states: (filters.states ?? []).map(parseState),
      deploymentId: filters.deploymentId ?? "",
      pageSize: filters.pageSize ?? 0,
      pageToken: filters.pageToken ?? "",
    };
    const resp = await this.unary(
      () => this.control.listInvocations(request, this.options(options)),
      options,
    );
    return { invocations: resp.invocations, nextPageToken: resp.nextPageToken };
  }

  /** Every invocation that matches the filters, page after page. */
  async *iterInvocations(
    filters: InvocationFilters = {},
    options: CallOptions = {},
  ): AsyncGenerator<Invocation, void, undefined> {
    let pageToken = filters.pageToken ?? "";
    do {
      const page = await this.listInvocations({ ...filters, pageToken }, options);
      yield* page.invocations;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** An invocation with its journal entries and its transition history. */
  async getJournal(invocationId: string, options: CallOptions = {}): Promise<GetJournalResponse> {
    return this.unary(
      () => this.control.getJournal({ invocationId }, this.options(options)),
      options,
    );
  }

  /**
   * Cancels an invocation and its not-completed call tree, leaves first (a handler waiting
   * on a call sees it there once the callee ended); does not wait for the handlers.
   */
  async cancelInvocation(invocationId: string, options: RequestOptions = {}): Promise<Invocation> {
    const request = this.request(invocationId, options);
    const resp = await this.unary(
      () => this.control.cancelInvocation(request, this.options(options)),
      options,
    );
    return must(resp.invocation, "invocation");
  }

  /** Pauses a running or backing-off invocation. */
  async pauseInvocation(invocationId: string, options: RequestOptions = {}): Promise<Invocation> {
    const request = this.request(invocationId, options);
    const resp = await this.unary(
      () => this.control.pauseInvocation(request, this.options(options)),
      options,
    );
    return must(resp.invocation, "invocation");
  }

  /** Resumes a paused, suspended or backing-off invocation. */
  async resumeInvocation(invocationId: string, options: ResumeOptions = {}): Promise<Invocation> {
    const request = {
      ...this.request(invocationId, options),
      deployment: options.deployment ?? "",
    };
    const resp = await this.unary(
      () => this.control.resumeInvocation(request, this.options(options)),
      options,
    );
    return must(resp.invocation, "invocation");
  }

  /** Kills an invocation and its not-completed call tree at once, without compensation. */
  async killInvocation(invocationId: string, options: RequestOptions = {}): Promise<Invocation> {
    const request = this.request(invocationId, options);
    const resp = await this.unary(
      () => this.control.killInvocation(request, this.options(options)),
      options,
    );
    return must(resp.invocation, "invocation");
  }

  /** Deletes a completed invocation, its journal and history; returns it as it was. */
  async purgeInvocation(invocationId: string, options: RequestOptions = {}): Promise<Invocation> {
    const request = this.request(invocationId, options);
    const resp = await this.unary(
      () => this.control.purgeInvocation(request, this.options(options)),
      options,
    );
    return must(resp.invocation, "invocation");
  }

  /** Deletes the journal of a completed invocation and keeps its result. */
  async purgeJournal(invocationId: string, options: RequestOptions = {}): Promise<Invocation> {
    const request = this.request(invocationId, options);
    const resp = await this.unary(
      () => this.control.purgeJournal(request, this.options(options)),
      options,
    );
    return must(resp.invocation, "invocation");
  }

  /** Starts a new invocation with the target, input and headers of a completed one. */
  async restartInvocationAsNew(
    invocationId: string,
    options: RestartOptions = {},
  ): Promise<Invocation> {
    const request = {
      ...this.request(invocationId, options),
      fromEntry: options.fromEntry ?? 0,
      deployment: options.deployment ?? "",
    };
    const resp = await this.unary(
      () => this.control.restartInvocationAsNew(request, this.options(options)),
      options,
    );
    return must(resp.invocation, "invocation");
  }

  /** The audit log, newest first (about one invocation if given). */
  async listAuditEntries(
    filters: { invocationId?: string; pageSize?: number; pageToken?: string } = {},
    options: CallOptions = {},
  ): Promise<{ entries: AuditEntry[]; nextPageToken: string }> {
    const request = {
      invocationId: filters.invocationId ?? "",
      pageSize: filters.pageSize ?? 0,
      pageToken: filters.pageToken ?? "",
    };
    const resp = await this.unary(
      () => this.control.listAuditEntries(request, this.options(options)),
      options,
    );
    return { entries: resp.entries, nextPageToken: resp.nextPageToken };
  }

  /**
   * Starts a bulk operation (a durable job on the server) and streams its progress: full
   * snapshots whose counts only grow, the last one with `final` set. Leaving the loop
   * early ends the stream, not the job: `watchBulkOperation` re-attaches.
   *
   *     for await (const p of client.bulkOperation("cancel", { query: "Greeter/greet" })) {
   *       console.log(`${p.processed}/${p.matched}`);
   *     }
   */
  bulkOperation(
    kind: BulkKind,
    where: SelectorInit | BulkSelector,
    options: BulkOptions = {},
  ): AsyncIterable<BulkOperationProgress> {
    const base = {
      selector: "$typeName" in where ? where : selector(where),
      reason: options.reason ?? "",
      requestId: options.requestId ?? "",
      dryRun: options.dryRun ?? false,
      maxPerSecond: options.maxPerSecond ?? 0,
    };
    const deployment = options.deployment ?? "";
    if (deployment && kind !== "resume" && kind !== "restart-as-new") {
      throw new TypeError(`${kind} takes no deployment`);
    }
    const call = this.options(options, true);
    const c = this.control;
    let open: () => AsyncIterable<BulkOperationProgress>;
    switch (kind) {
      case "cancel":
        open = () => c.cancelInvocations(create(CancelInvocationsRequestSchema, base), call);
        break;
      case "kill":
        open = () => c.killInvocations(create(KillInvocationsRequestSchema, base), call);
        break;
      case "pause":
        open = () => c.pauseInvocations(create(PauseInvocationsRequestSchema, base), call);
        break;
      case "resume": {
        const request = create(ResumeInvocationsRequestSchema, { ...base, deployment });
        open = () => c.resumeInvocations(request, call);
        break;
      }
      case "purge":
        open = () => c.purgeInvocations(create(PurgeInvocationsRequestSchema, base), call);
        break;
      case "restart-as-new": {
        const request = create(RestartInvocationsAsNewRequestSchema, { ...base, deployment });
        open = () => c.restartInvocationsAsNew(request, call);
        break;
      }
      default:
        throw new TypeError(`unknown bulk operation ${JSON.stringify(kind)}`);
    }
    return decoded(open, options.signal);
  }

  /** The progress of a bulk operation, from now to its end (final). */
  watchBulkOperation(
    bulkOperationId: string,
    options: CallOptions = {},
  ): AsyncIterable<BulkOperationProgress> {
    const call = this.options(options, true);
    return decoded(
      () => this.control.watchBulkOperation({ bulkOperationId }, call),
      options.signal,
    );
  }

  /** Stops a running bulk operation after its current page. */
  async stopBulkOperation(
    bulkOperationId: string,
    options: CallOptions = {},
  ): Promise<BulkOperationProgress> {
    const resp = await this.unary(
      () => this.control.stopBulkOperation({ bulkOperationId }, this.options(options)),
      options,
    );
    return must(resp.bulkOperation, "bulk operation");
  }

  /** A page of bulk operations, newest first. */
  async listBulkOperations(
    filters: { states?: BulkOperationState[]; pageSize?: number; pageToken?: string } = {},
    options: CallOptions = {},
  ): Promise<{ bulkOperations: BulkOperationProgress[]; nextPageToken: string }> {
    const request = {
      states: filters.states ?? [],
      pageSize: filters.pageSize ?? 0,
      pageToken: filters.pageToken ?? "",
    };
    const resp = await this.unary(
      () => this.control.listBulkOperations(request, this.options(options)),
      options,
    );
    return { bulkOperations: resp.bulkOperations, nextPageToken: resp.nextPageToken };
  }
}
