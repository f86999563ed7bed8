/**
 * The durable state of a Messenger, behind one storage-neutral interface: the in-memory store
 * ships here, the embedded SQLite one in `@xmppbus/store-sqlite`, and a server database can
 * implement the same methods. Two halves:
 *
 * - **outbox** (sender): every QoS 1/2 message (and every scheduled QoS 0 message) from the
 *   moment `send` accepts it until the peer acknowledged it (QoS 1) or confirmed `deliver`
 *   (QoS 2); plus the **dead letters** it gave up on.
 * - **inbox** (receiver, QoS 2): assured messages stored before answering `received`, and a
 *   log of delivered `(sender, msgId)` pairs that makes `deliver` and re-sent `assured`
 *   idempotent (exactly-once).
 *
 * Contract for implementers (checked by `messageStoreContract` in `@xmppbus/testing`):
 * - **Durability**: when a write's promise resolves, the change survives the process dying
 *   (for durable stores; the memory store keeps it until the process exits).
 * - **Atomicity**: each method is atomic on its own: after a crash either all of its change is
 *   there or none of it (a move such as `deadLetter` never leaves a copy in both places, nor in
 *   neither).
 * - **Order**: calls may overlap (the messenger does not await one before issuing the next);
 *   they take effect in the order they were called, and a read sees every write called before
 *   it, even one whose promise has not resolved yet.
 * - **Sequence**: `seq` grows strictly across the store's whole life, restarts included: the
 *   messenger keeps per-peer order by it.
 * - **Lifecycle**: `open` before anything else; every other method rejects with `StoreError`
 *   (`ERR_STORE`) outside `open`…`close`. Failures are `StoreError`, `retryable` when trying
 *   again may succeed (e.g. the storage is busy).
 * - **Time**: the store reads no clock; every instant is an argument, in ms since the epoch.
 * - **Copies**: records passed in and returned are plain values; changing one afterwards never
 *   changes the stored state.
 */
import type { QosLevel } from './wire.js';

/** A message in the outbox, as the store keeps it. */
export interface OutboxRecord {
  /** Message id: the IQ id of QoS 1 attempts, the `msgId` of QoS 2, the origin-id. Unique per store. */
  id: string;
  /** Store-assigned, strictly increasing: per-peer send order. */
  seq: number;
  /** Recipient JID as given to `send`. */
  to: string;
  qos: QosLevel;
  /** The inner `<message>` element, serialised (payload, headers, origin-id, expire-at; no delay). */
  stanza: string;
  /** Payload element `{ns}name`, for listing dead letters without parsing. */
  payload: string;
  /** When `send` accepted it, ms since the epoch (becomes the XEP-0203 delay stamp). */
  createdAt: number;
  /** Not sent before this instant (scheduled delivery), ms since the epoch. */
  notBefore: number;
  /** Dead-lettered as expired when still undelivered at this instant; null = never. */
  expiresAt: number | null;
  /** Failed attempts so far. */
  attempts: number;
  /** `queued` until the peer answered; `received` = QoS 2 stored by the peer, `deliver` pending. */
  state: 'queued' | 'received';
}

export type NewOutboxRecord = Omit<OutboxRecord, 'seq'>;

export type DeadLetterReason =
  /** The TTL elapsed before delivery (at dequeue, or the receiver refused it as expired). */
  | 'expired'
  /** The receiver refused it for good (bad-request, not-allowed, feature-not-implemented, …). */
  | 'rejected'
  /** Retryable failures (e.g. the receiver's handler kept failing) exceeded `maxAttempts`. */
  | 'max-attempts'
  /** Pushed out of a full outbox by the `drop-oldest` overflow policy. */
  | 'overflow';

export interface DeadLetter extends OutboxRecord {
  reason: DeadLetterReason;
  /** The last error, as text (stanza error condition and text, or message). */
  error: string | undefined;
  /** When it was dead-lettered, ms since the epoch. */
  deadAt: number;
}

/** A QoS 2 message the receiver stored before answering `received`. */
export interface InboxRecord {
  /** Bare JID of the sender: the dedupe scope of `msgId`. */
  sender: string;
  msgId: string;
  /** Full JID the envelope came from (the inner message's `from` is overwritten with it). */
  from: string;
  /** The inner message, serialised, with to/from already overwritten. */
  stanza: string;
  /** Namespace of the envelope, to answer in kind. */
  ns: string;
  receivedAt: number;
}

export type InboxPutResult =
  /** Newly stored. */
  | 'stored'
  /** Already stored and not yet delivered (a re-sent `assured`). */
  | 'pending'
  /** Already delivered (a re-sent `assured` after a lost `deliver` result): answer `received` again. */
  | 'delivered';

/** Filters for `listDeadLetters`. */
export interface DeadLetterQuery {
  /** At most this many, oldest first (default: all). */
  limit?: number;
  /** Only those addressed to this JID, compared exactly as given to `send`. */
  to?: string;
}

export interface MessageStore {
  /**
   * Makes the storage usable (creating it if needed) and restores what an earlier instance on
   * the same storage committed. Called by the Messenger before anything else. Idempotent; after
   * `close`, `open` may be called again.
   */
  open(): Promise<void>;
  /**
   * Finishes every write already called (their promises settle first), then releases the
   * storage. Idempotent. Nothing committed is lost.
   */
  close(): Promise<void>;

  // ── outbox ──
  /**
   * Adds a message and returns it with a new `seq`, greater than every `seq` handed out before.
   * If a record with the same `id` is already in the outbox, returns that one unchanged
   * (idempotent producer retries).
   */
  enqueue(record: NewOutboxRecord): Promise<OutboxRecord>;
  /** Every outbox record, in ascending `seq` order (recovery after a restart). */
  loadOutbox(): Promise<OutboxRecord[]>;
  /** QoS 2: the peer answered `received`; sets `state` to `received`. Unknown ids: no-op. */
  markReceived(id: string): Promise<void>;
  /** Records a failed attempt (`attempts` so far) and when to try again. Unknown ids: no-op. */
  recordAttempt(id: string, attempts: number, notBefore: number): Promise<void>;
  /** Removes a message that reached its guarantee. Unknown ids: no-op. */
  remove(id: string): Promise<void>;
  /**
   * Optional: `remove` of several messages as one write, atomic as a whole (a batch's
   * acknowledgements: one promise instead of one per message). Without it the messenger calls
   * `remove` for each.
   */
  removeMany?(ids: readonly string[]): Promise<void>;
  /** Optional: `markReceived` of several messages as one write, atomic as a whole. */
  markReceivedMany?(ids: readonly string[]): Promise<void>;
  /**
   * Moves a message from the outbox to the dead letters in one atomic step, keeping every field
   * and adding `reason`, `error` and `deadAt`. Unknown ids: no-op.
   */
  deadLetter(id: string, reason: DeadLetterReason, error: string | undefined, at: number): Promise<void>;

  // ── dead letters ──
  /** Dead letters ordered by `deadAt`, then `seq` (oldest first). */
  listDeadLetters(query?: DeadLetterQuery): Promise<DeadLetter[]>;
  getDeadLetter(id: string): Promise<DeadLetter | undefined>;
  /**
   * Moves a dead letter back into the outbox in one atomic step, with a new `seq`, `attempts` 0,
   * state `queued` and the given schedule/expiry. Returns the outbox record, or undefined if
   * there is no such dead letter or the same `id` is in the outbox again (both stay as they are).
   */
  replayDeadLetter(id: string, notBefore: number, expiresAt: number | null): Promise<OutboxRecord | undefined>;
  /** Deletes a dead letter; false if there was none. */
  removeDeadLetter(id: string): Promise<boolean>;

  // ── inbox (QoS 2 receiver) ──
  /**
   * Stores an assured message unless `(sender, msgId)` is already pending (`'pending'`, the
   * stored record is kept) or delivered (`'delivered'`, nothing is stored).
   */
  inboxPut(record: InboxRecord): Promise<InboxPutResult>;
  /** The pending record, `'delivered'` if it was delivered (and not pruned), undefined if unknown. */
  inboxGet(sender: string, msgId: string): Promise<InboxRecord | 'delivered' | undefined>;
  /**
   * Marks `(sender, msgId)` delivered at `at` in one atomic step: removes the pending record (if
   * any) and logs the pair (a second call keeps the first `at`), so later `inboxPut`/`inboxGet`
   * answer `'delivered'`.
   */
  inboxComplete(sender: string, msgId: string, at: number): Promise<void>;
  /**
   * Optional, needed by `transactional` handlers: runs `effect` synchronously and marks
   * `(sender, msgId)` delivered as ONE atomic unit, so no crash can separate "effect done" from
   * "marked delivered". If `effect` throws, nothing is marked, the promise rejects with that
   * error, and whatever `effect` wrote into this store's own storage is rolled back. The store
   * may defer the call to group it with other writes, but runs it before any write called after
   * it.
   */
  inboxCompleteWith?(sender: string, msgId: string, at: number, effect: () => void): Promise<void>;
  /**
   * Optional: removes a pending record WITHOUT marking it delivered (the receiver evicts a
   * sender's oldest undelivered entry to make room; its later `deliver` finds nothing). A
   * delivered or unknown pair: no-op. Without it the receiver never evicts: over its pending
   * budget it refuses new `assured` until the TTL prune frees room.
   */
  inboxDiscard?(sender: string, msgId: string): Promise<void>;
  /** Pending (stored, not delivered) counts per sender (restores the receiver's caps after a restart). */
  inboxPendingCounts(): Promise<Map<string, number>>;
  /**
   * Forgets delivered-log entries logged before `deliveredBefore` and pending records received
   * before `pendingBefore` (a sender that never sent `deliver`); both bounds are exclusive.
   * Returns how many entries went. Nothing in the outbox or the dead letters is touched.
   */
  prune(deliveredBefore: number, pendingBefore: number): Promise<number>;
}
