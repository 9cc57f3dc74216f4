// Operator-facing names of the contract's enums (`backing-off`, not
// INVOCATION_STATE_BACKING_OFF), spelled as the CLI, the Python client and the README do.

import { BulkOperationKind, BulkOperationState } from "./gen/invoctl/v1/bulk_pb.js";
import { InvocationState, Outcome } from "./gen/invoctl/v1/invocation_pb.js";

/** A state as the client accepts it: `"suspended"`, `"backing-off"`, or the enum value. */
export type StateLike = InvocationState | StateName;

/** Every state an invocation can be in, by operator-facing name. */
export type StateName =
  | "pending"
  | "scheduled"
  | "ready"
  | "running"
  | "backing-off"
  | "suspended"
  | "paused"
  | "completed";

function label(names: Record<number, string>, value: number): string {
  const name = names[value];
  // A newer server may send a value these stubs do not know yet.
  return name === undefined ? `unknown(${value})` : name.toLowerCase().replace(/_/g, "-");
}

/** `InvocationState.BACKING_OFF` -> `backing-off`. */
export function stateName(state: InvocationState): string {
  return label(InvocationState, state);
}

/** `Outcome.CANCELLED` -> `cancelled`. */
export function outcomeName(outcome: Outcome): string {
  return label(Outcome, outcome);
}

/** `BulkOperationKind.RESTART_AS_NEW` -> `restart-as-new`. */
export function bulkKindName(kind: BulkOperationKind): string {
  return label(BulkOperationKind, kind);
}

/** `BulkOperationState.DRY_RUN` -> `dry-run`. */
export function bulkStateName(state: BulkOperationState): string {
  return label(BulkOperationState, state);
}

/**
 * The InvocationState of a name or value. Names are case-insensitive and may use `-` or
 * `_`: `suspended`, `backing-off`, `BACKING_OFF`. Throws a RangeError for anything else,
 * `unspecified` included.
 */
export function parseState(state: StateLike | string): InvocationState {
  let value: number | undefined;
  if (typeof state === "string") {
    const key = state
      .trim()
      .toUpperCase()
      .replace(/-/g, "_")
      .replace(/^INVOCATION_STATE_/, "");
    const found = (InvocationState as unknown as Record<string, unknown>)[key];
    value = typeof found === "number" ? found : undefined;
  } else if (Number.isInteger(state) && InvocationState[state] !== undefined) {
    value = state;
  }
  if (value === undefined || value === InvocationState.UNSPECIFIED) {
    throw new RangeError(`unknown invocation state ${JSON.stringify(state)}`);
  }
  return value;
}
