/**
 * The durable state of a Messenger, behind one interface so a server database can replace the
 * embedded SQLite default. Two halves:
 *
 * - **outbox** (sender): every QoS 1/2 message (and every scheduled QoS 0 message) from the
 *   moment `send` accepts it until the peer acknowledged it (QoS 1) or confirmed `deliver`
 *   (QoS 2); plus the **dead letters** it gave up on.
 * - **inbox** (receiver, QoS 2): assured messages stored before answering `received`, and a
 *   log of delivered `(sender, msgId)` pairs that makes `deliver` and re-sent `assured`
 *   idempotent (exactly-once).
 *
 * Contract for implementers: every method that returns must have made its change durable (for
 * the SQLite store: committed; it survives `kill -9`). Methods may be called concurrently; each
 * one is atomic on its own. `seq` must grow monotonically across restarts: the messenger keeps
 * per-peer order by it.
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

export interface MessageStore {
  /** Opens/creates the underlying storage. Called once by the Messenger before anything else. */
  open(): Promise<void>;
  /** Releases the storage. Idempotent. */
  close(): Promise<void>;

  // ── outbox ──
  /**
   * Adds a message and returns it with its `seq`. If a record with the same `id` is already in
   * the outbox, returns that one unchanged (idempotent producer retries).
   */
  enqueue(record: NewOutboxRecord): Promise<OutboxRecord>;
  /** Every outbox record, in `seq` order (recovery after a restart). */
  loadOutbox(): Promise<OutboxRecord[]>;
  /** QoS 2: the peer answered `received`. */
  markReceived(id: string): Promise<void>;
  /** Records a failed attempt and when to try again. */
  recordAttempt(id: string, attempts: number, notBefore: number): Promise<void>;
  /** Removes a message that reached its guarantee. */
  remove(id: string): Promise<void>;
  /** Moves a message from the outbox to the dead letters (atomically). */
  deadLetter(id: string, reason: DeadLetterReason, error: string | undefined, at: number): Promise<void>;

  // ── dead letters ──
  listDeadLetters(options?: { limit?: number; to?: string }): Promise<DeadLetter[]>;
  getDeadLetter(id: string): Promise<DeadLetter | undefined>;
  /**
   * Moves a dead letter back into the outbox (atomically) with a new `seq`, `attempts` 0,
   * state `queued` and the given schedule/expiry. Returns the outbox record, or undefined if
   * there is no such dead letter.
   */
  replayDeadLetter(id: string, notBefore: number, expiresAt: number | null): Promise<OutboxRecord | undefined>;
  removeDeadLetter(id: string): Promise<boolean>;

  // ── inbox (QoS 2 receiver) ──
  /** Stores an assured message unless `(sender, msgId)` is already pending or delivered. */
  inboxPut(record: InboxRecord): Promise<InboxPutResult>;
  /** The pending record, 'delivered' if it was delivered, undefined if unknown. */
  inboxGet(sender: string, msgId: string): Promise<InboxRecord | 'delivered' | undefined>;
  /** Marks delivered: removes the pending record and logs `(sender, msgId)` (atomically). */
  inboxComplete(sender: string, msgId: string, at: number): Promise<void>;
  /** Pending (stored, not delivered) counts per sender (restores the receiver's caps after a restart). */
  inboxPendingCounts(): Promise<Map<string, number>>;
  /**
   * Forgets delivered-log entries older than `deliveredBefore` and pending records older than
   * `pendingBefore` (a sender that never sent `deliver`). Returns how many rows went.
   */
  prune(deliveredBefore: number, pendingBefore: number): Promise<number>;

  /**
   * Optional: runs `fn` synchronously inside one store transaction. Required by
   * `transactional` handlers, whose side effects commit together with the delivered mark —
   * the only way a crash cannot split "effect done" from "marked delivered".
   */
  transaction?<T>(fn: () => T): T;
  /**
   * Optional: like `transaction`, but may defer `fn` to a group commit shared with other writes;
   * resolves after the commit. Preferred by the messenger when present.
   */
  transactionBatched?<T>(fn: () => T): Promise<T>;
  /** Optional synchronous `inboxComplete`, for use inside `transaction`. */
  inboxCompleteSync?(sender: string, msgId: string, at: number): void;
}
