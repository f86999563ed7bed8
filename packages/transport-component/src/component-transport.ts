/**
 * XEP-0114 (Jabber Component Protocol) transport: a lean implementation over `node:net` and
 * ltx's SAX tokenizer (see README for the CPU measurement behind that choice).
 */
import { createHash } from 'node:crypto';
import { escapeXML } from 'ltx';
import {
  AuthError,
  ConfigError,
  ProtocolError,
  localName,
  type Element,
  type SendOptions,
  type WaitOptions,
} from '@xmppbus/core';
import {
  StreamTransport,
  certificateError,
  StreamLink,
  parseService,
  resolveSecret,
  withConnectionContext,
  type Secret,
  type StreamConnectOptions,
  type ServiceAddress,
  type StreamConnector,
  type StreamTransportOptions,
} from '@xmppbus/stream';

export const NS_COMPONENT = 'jabber:component:accept';

export interface ComponentTlsOptions {
  /** Verify the server certificate (default true). */
  rejectUnauthorized?: boolean;
  /** Trusted CA certificate(s) in PEM, e.g. a test CA (default: Node's bundled CAs). */
  ca?: string | Buffer | (string | Buffer)[];
  /** SNI and the name checked against the certificate (default: `domain`, the component's name). */
  servername?: string;
}

export interface ComponentTransportOptions extends StreamConnectOptions {
  /** Where the server's component listener is: `xmpp://127.0.0.1:5347` (port defaults to 5347). */
  service: string;
  /** The component's name, e.g. `svc-a.localhost`; becomes `address`. */
  domain: string;
  /** Shared secret, or a callback fetching it (called at each connection attempt). No default. */
  password: Secret;
  /** Largest stanza sent, bytes (default 512 KiB, Prosody's component cap); larger → PayloadTooLargeError. */
  maxStanzaBytes?: number;
  /**
   * Direct TLS from the first byte (XEP-0114 has no STARTTLS), for a listener that expects it,
   * e.g. ejabberd's `ejabberd_service` with `tls: true`. Default: plaintext.
   */
  tls?: ComponentTlsOptions;
  /**
   * More component listeners of the same server or cluster (`xmpp://host:port`), e.g. the other
   * ejabberd nodes: each connection attempt tries `service`, then these in turn, until one
   * accepts the TCP connection, and stays with it until it fails. Default: none.
   */
  endpoints?: readonly string[];
}

/** @internal test seams, not part of the public options. */
type InternalOptions = Pick<StreamTransportOptions, 'clock' | 'random' | 'closeGraceMs' | 'connect'>;

export class ComponentTransport extends StreamTransport {
  readonly address: string;
  readonly #password: Secret;
  readonly #tls: ComponentTlsOptions | undefined;
  /** `component <domain> at <host:port>`: named in every connect error. */
  readonly #where: string;
  /** The secret the first attempt uses, fetched (and checked) before connecting. */
  #firstSecret: string | undefined;

  private constructor(options: ComponentTransportOptions & InternalOptions) {
    super(parseService(options.service, 5347), {
      ...options,
      maxStanzaBytes: options.maxStanzaBytes ?? 512 * 1024,
      connect: failover(
        [options.service, ...(options.endpoints ?? [])].map((s) => parseService(s, 5347)),
        options.connect ?? StreamLink.connect,
      ),
    });
    this.address = options.domain;
    this.#password = options.password;
    this.#tls = options.tls;
    const { host, port } = parseService(options.service, 5347);
    const more = options.endpoints?.length ? ` (+${options.endpoints.length} more endpoints)` : '';
    this.#where = `component ${options.domain} at ${host.includes(':') ? `[${host}]` : host}:${port}${more}`;
  }

  /** Creates the transport and connects; see `componentTransport()`. */
  static async connect(options: ComponentTransportOptions): Promise<ComponentTransport> {
    validate(options);
    const t = new ComponentTransport(options);
    // A missing secret fails here, before any connection: `password: process.env.X` unset.
    t.#firstSecret = await t.#secret();
    const wait: WaitOptions = { signal: options.signal, timeout: options.timeout };
    try {
      await t._start(wait);
    } catch (err) {
      throw withConnectionContext(err, t.#where);
    }
    return t;
  }

  async #secret(): Promise<string> {
    const secret: unknown = await resolveSecret(this.#password);
    if (typeof secret !== 'string' || secret === '')
      throw new ConfigError(
        `${this.#where}: the \`password\` option ${typeof this.#password === 'function' ? 'callback returned' : 'is'} ${
          secret === '' ? 'an empty string' : secret == null ? String(secret) : `a ${typeof secret}, not a string`
        }: give the component's shared secret (an unset environment variable reads as undefined)`,
      );
    return secret;
  }

  /**
   * ejabberd silently drops component stanzas without `from` (Prosody fills it in), so the
   * component's own address is stamped on any stanza that lacks one.
   */
  override send(stanza: Element, options?: SendOptions): Promise<void> {
    if (stanza.attrs['from'] === undefined) stanza.attrs['from'] = this.address;
    return super.send(stanza, options);
  }

  protected async _negotiate(link: StreamLink, signal: AbortSignal): Promise<void> {
    if (this.#tls) await this.#startTls(link, this.#tls, signal);
    const header = await link.openStream(
      `<stream:stream xmlns='${NS_COMPONENT}' xmlns:stream='http://etherx.jabber.org/streams' to='${escapeXML(this.address)}'>`,
      signal,
    );
    const id = header.attrs['id'] as string | undefined;
    if (!id) {
      // Prosody answers an unknown name with an id-less header followed by <host-unknown/>:
      // read on so the caller gets that typed error rather than a generic protocol one.
      const el = await link.next(signal);
      throw new ProtocolError(`the server sent no stream id (then <${el.name}>)`);
    }
    const secret = this.#firstSecret ?? (await this.#secret());
    this.#firstSecret = undefined;
    const digest = createHash('sha1')
      .update(id + secret, 'utf8')
      .digest('hex');
    link.write(`<handshake>${digest}</handshake>`);
    let reply: Element;
    try {
      reply = await link.next(signal);
    } catch (err) {
      // Name the component: a process often runs several, each with its own secret.
      if (err instanceof AuthError)
        throw new AuthError(`${this.#where}: the server refused the handshake secret (${err.message})`, { cause: err });
      throw err;
    }
    if (localName(reply) !== 'handshake') throw new ProtocolError(`expected <handshake/>, got <${reply.name}>`);
  }

  async #startTls(link: StreamLink, tls: ComponentTlsOptions, signal: AbortSignal): Promise<void> {
    try {
      await link.upgradeTls(
        { servername: tls.servername ?? this.address, rejectUnauthorized: tls.rejectUnauthorized ?? true, ca: tls.ca },
        signal,
      );
    } catch (err) {
      throw certificateError(err);
    }
  }
}

/**
 * A connector over several listeners (cluster nodes): starts at the one that worked last and
 * moves on while connecting fails (refused, unreachable), all within one attempt, so a component
 * re-homes to a surviving node without waiting for the reconnect backoff. An abort (attempt
 * timeout, close) ends the round; the next attempt then starts at the listener after the one
 * that hung. (A listener that accepts TCP but never answers the stream is not detected here.)
 */
function failover(addresses: readonly ServiceAddress[], connect: StreamConnector): StreamConnector {
  if (addresses.length === 1) return connect;
  let current = 0;
  return async (_address, signal) => {
    let last: unknown;
    for (let k = 0; k < addresses.length; k++) {
      const i = (current + k) % addresses.length;
      try {
        const link = await connect(addresses[i]!, signal);
        current = i;
        return link;
      } catch (err) {
        if (signal.aborted) {
          // The attempt timed out on this listener (a host that drops packets never refuses):
          // the next attempt starts at the next one instead of waiting here again.
          current = (i + 1) % addresses.length;
          throw err;
        }
        last = err;
      }
    }
    throw last;
  };
}

function validate(options: ComponentTransportOptions): void {
  if (!options || typeof options !== 'object') throw new ConfigError('options are required');
  if (typeof options.service !== 'string' || options.service === '') throw new ConfigError('service is required');
  if (typeof options.domain !== 'string' || !/^[^\s@/<>'"&]+$/.test(options.domain))
    throw new ConfigError(`domain must be a bare domain name, got '${String(options.domain)}'`);
  if (typeof options.password !== 'string' && typeof options.password !== 'function')
    throw new ConfigError(
      `component ${options.domain}: the \`password\` option is ${options.password === undefined ? 'missing' : 'not a string'} ` +
        '(the shared secret, or a function returning it; an unset environment variable reads as undefined)',
    );
  parseService(options.service, 5347); // throws ConfigError
  if (options.endpoints !== undefined) {
    if (!Array.isArray(options.endpoints)) throw new ConfigError('endpoints must be an array of xmpp://host:port');
    for (const e of options.endpoints as unknown[]) {
      if (typeof e !== 'string') throw new ConfigError('endpoints must be an array of xmpp://host:port');
      parseService(e, 5347);
    }
  }
  if (options.maxQueue !== undefined && !(Number.isInteger(options.maxQueue) && options.maxQueue > 0))
    throw new ConfigError('maxQueue must be a positive integer');
  if (options.maxStanzaBytes !== undefined && !(options.maxStanzaBytes > 0))
    throw new ConfigError('maxStanzaBytes must be positive');
  if (options.tls !== undefined && (options.tls === null || typeof options.tls !== 'object'))
    throw new ConfigError('tls must be an object (e.g. { ca })');
}

/**
 * Connects a component and resolves once it is online. Rejects with AuthError (bad secret),
 * ConflictError (name already connected — Prosody), ConfigError (name unknown to the server —
 * Prosody `host-unknown`), ConnectionError (refused/unreachable), TimeoutError or the abort
 * reason. After a rejection nothing keeps running (no retry loop, no socket, no timer).
 */
export function componentTransport(options: ComponentTransportOptions): Promise<ComponentTransport> {
  return ComponentTransport.connect(options);
}
