/**
 * What an inbound call costs while it waits or runs, and the server's budget defaults. A call
 * keeps its parsed tree until it is answered, and a tree can cost ~40× its text (a 242 KiB
 * stanza of empty elements holds ~9 MiB of heap: ~150 bytes per element or text node, measured
 * with `process.memoryUsage()`), so large calls are charged for their nodes as well as their bytes.
 */
import type { BudgetLimits } from '@xmppbus/core';

/** Budgets of the calls one RpcServer keeps in hand (running and queued), per sender and in total. */
export interface RpcLimits {
  /** Cost (bytes, see core `stanzaCost`) one sender's calls may hold (default 1 MiB). */
  perSenderBytes?: number;
  /** Calls one sender may have running or queued (default 64). */
  perSenderCount?: number;
  /** Cost all calls together may hold (default 16 MiB). */
  totalBytes?: number;
  /** Calls running or queued in total (default 1024). */
  totalCount?: number;
}

/**
 * Defaults: whatever senders do, admitted calls hold at most ~3.5 × 16 MiB of trees (≤ 2.4 × the
 * node charge + 1.1 × the bytes) plus 1024 small calls of ≤ 60 KiB each: well under 256 MB.
 */
export const RPC_LIMIT_DEFAULTS: Readonly<Required<RpcLimits>> = Object.freeze({
  perSenderBytes: 1 << 20,
  perSenderCount: 64,
  totalBytes: 16 << 20,
  totalCount: 1024,
});

/** The budget options with defaults filled in (core's `SenderBudget` checks them). */
export function budgetLimits(limits: RpcLimits | undefined): Required<BudgetLimits> {
  return { ...RPC_LIMIT_DEFAULTS, ...limits };
}
