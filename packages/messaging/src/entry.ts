/**
 * The in-memory shape of an outbox message and of a peer, shared by the outbox, the per-peer
 * dispatcher and the QoS sender (data only: each unit owns the fields it changes).
 */
import type { Backoff, Deferred, Element, TimerHandle } from '@xmppbus/core';
import type { SeqQueue } from './seq-queue.js';
import type { OutboxRecord } from './store.js';

export interface Entry {
  rec: OutboxRecord;
  /** The inner message: the stored text as a `RawMessage` (made lazily after a restart), or a tree. */
  message: Element | undefined;
  /** A `<delay/>` was added to `message` (it waited past the threshold). */
  delayed: boolean;
  /** `send` calls waiting for this message's guarantee. */
  waiters: Deferred<void>[] | undefined;
  inFlight: boolean;
  /** Waiting in the outbox's schedule (not yet due). */
  scheduled: boolean;
  /** Retryable failures that count towards `retry.attempts` (not outages). */
  failures: number;
  peer: Peer;
  /** Serialised size of the inner message in bytes (batch byte cap), computed on first use; -1 = unknown. */
  bytes: number;
}

export type PeerState = 'running' | 'paused' | 'offline';

export interface Peer {
  readonly to: string;
  /** Due messages in seq order (also QoS 2 ones awaiting `deliver`). */
  readonly queue: SeqQueue<Entry>;
  inFlight: number;
  state: PeerState;
  /** Delays between probes of this peer; reset once it answers. */
  readonly backoff: Backoff;
  /** Send one message at a time until one succeeds (after a failure). */
  probing: boolean;
  /** The resume timer while backing off. */
  timer: TimerHandle | undefined;
  /** A pump is queued for the end of this turn (so what becomes ready in one turn is batched). */
  pumpQueued: boolean;
}

export const bySeq = (e: Entry): number => e.rec.seq;
