/**
 * Unit-test fixture (not shipped: excluded from the build): a transport that records what the
 * session writes and lets the test set its status and inject inbound stanzas.
 */
import { BaseTransport, type BaseTransportOptions } from './base-transport.js';
import type { TransportStatus } from './transport.js';
import type { Element } from './xml.js';

export class RecordingTransport extends BaseTransport {
  /** Stanzas written, in order. */
  readonly sent: Element[] = [];
  /** `close()` calls that reached the transport. */
  closed = 0;

  constructor(
    readonly address = 'me.test',
    options?: BaseTransportOptions,
  ) {
    super(options);
  }

  protected _write(stanza: Element): Promise<void> {
    this.sent.push(stanza);
    return Promise.resolve();
  }

  protected _close(): Promise<void> {
    this.closed++;
    return Promise.resolve();
  }

  set(status: TransportStatus): void {
    this._setStatus(status);
  }

  /** Delivers `stanza` as if it arrived from the network. */
  emit(stanza: Element): void {
    this._emitStanza(stanza);
  }
}
