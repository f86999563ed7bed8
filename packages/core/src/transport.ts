/**
 * The seam between features (rpc, pubsub, messaging) and connections (component, client,
 * memory). Features depend on this interface only; concrete transports live at the edges.
 */
import type { WaitOptions } from './abort.js';
import type { Element } from './xml.js';

/**
 * - `idle`: created, not started
 * - `connecting`: first connection attempt in progress
 * - `online`: stanzas flow
 * - `reconnecting`: connection lost, backing off / retrying; sends queue up (bounded)
 * - `closed`: closed for good; sends reject with ClosedError
 */
export type TransportStatus = 'idle' | 'connecting' | 'online' | 'reconnecting' | 'closed';

export interface SendOptions {
  signal?: AbortSignal | undefined;
}

export type StanzaListener = (stanza: Element) => void;
export type StatusListener = (status: TransportStatus, error?: Error) => void;

export interface Transport extends AsyncDisposable {
  /** The JID this endpoint speaks as: a component domain or a client's full JID once bound. */
  readonly address: string;
  readonly status: TransportStatus;
  /** Largest stanza (bytes, UTF-8) the server accepts on this link; features refuse larger payloads early. */
  readonly maxStanzaBytes: number;

  /**
   * Sends a stanza. Resolves once it is handed to the socket. While not online the stanza waits
   * in a bounded queue; beyond its limit `send` rejects with QueueFullError. Rejects with
   * ClosedError after close, ConnectionError if the link fails before the write.
   */
  send(stanza: Element, options?: SendOptions): Promise<void>;

  /** Subscribes to inbound stanzas; returns the unsubscribe function. */
  onStanza(listener: StanzaListener): () => void;
  /** Subscribes to status changes; returns the unsubscribe function. */
  onStatus(listener: StatusListener): () => void;

  /** Resolves when every queued and in-flight send has been written (or failed). */
  drain(options?: WaitOptions): Promise<void>;
  /** Closes the link for good; pending queued sends reject with ClosedError. Idempotent. */
  close(): Promise<void>;
}
