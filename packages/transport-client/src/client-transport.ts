/**
 * c2s client transport (RFC 6120/6121): STARTTLS when offered, SASL (SCRAM-SHA-256/-1, PLAIN),
 * resource binding, initial presence; the same lifecycle (reconnect, bounded queue, clean
 * close) as the component transport. For IoT agents and tools that log in as users.
 */
import { escapeXML } from 'ltx';
import {
  AuthError,
  ConfigError,
  ConnectionError,
  ProtocolError,
  StanzaError,
  findChild,
  localName,
  textOf,
  type Element,
  type WaitOptions,
} from '@xmppbus/core';
import {
  StreamTransport,
  certificateError,
  parseService,
  resolveSecret,
  withConnectionContext,
  type Secret,
  type StreamConnectOptions,
  type StreamLink,
  type StreamTransportOptions,
} from '@xmppbus/stream';
import { MECHANISM_PREFERENCE, plain, scram, type SaslMechanismName, type SaslSession } from './sasl.js';

export const NS_CLIENT = 'jabber:client';
const NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls';
const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
const NS_SESSION = 'urn:ietf:params:xml:ns:xmpp-session';

export interface ClientTlsOptions {
  /** Verify the server certificate (default true). */
  rejectUnauthorized?: boolean;
  /** Trusted CA certificate(s) in PEM, e.g. a test CA. */
  ca?: string | Buffer | (string | Buffer)[];
  /** Name checked against the certificate (default: `domain`). */
  servername?: string;
  /**
   * Refuse to go on when the server offers no STARTTLS (default false: plaintext loopback test
   * servers). Set it on any network you do not control: an active attacker can strip the offer.
   */
  required?: boolean;
}

export interface ClientTransportOptions extends StreamConnectOptions {
  /** c2s endpoint: `xmpp://127.0.0.1:5222` (port defaults to 5222). */
  service: string;
  /** The XMPP domain (`to` of the stream, domain of the JID). */
  domain: string;
  username: string;
  /** The password, or a callback fetching it (called at each connection attempt). No default. */
  password: Secret;
  /** Resource to bind; default: server-assigned, then reused across reconnects. */
  resource?: string;
  /**
   * SASL mechanism to use; default: the strongest offered (SCRAM-SHA-256 > SCRAM-SHA-1 > PLAIN).
   * PLAIN is only used over TLS unless `allowPlainWithoutTls`.
   */
  mechanism?: SaslMechanismName;
  /** Allow PLAIN on an unencrypted stream (loopback tests). Default false. */
  allowPlainWithoutTls?: boolean;
  /** STARTTLS is used whenever the server offers it; these options control trust and whether it is required. */
  tls?: ClientTlsOptions;
  /** Send initial `<presence/>` after binding (default true; needed for offline messages to flush). */
  initialPresence?: boolean;
  /** Largest stanza sent, bytes (default 256 KiB: Prosody's and ejabberd's c2s cap). */
  maxStanzaBytes?: number;
}

/** @internal test seams */
type InternalOptions = Pick<StreamTransportOptions, 'clock' | 'random' | 'closeGraceMs' | 'connect'>;

function streamHeader(domain: string): string {
  return `<?xml version='1.0'?><stream:stream to='${escapeXML(domain)}' version='1.0' xml:lang='en' xmlns='${NS_CLIENT}' xmlns:stream='http://etherx.jabber.org/streams'>`;
}

export class ClientTransport extends StreamTransport {
  readonly #options: ClientTransportOptions;
  #jid: string;
  #resource: string | undefined;
  #mechanismUsed: SaslMechanismName | undefined;
  #seq = 0;

  private constructor(options: ClientTransportOptions & InternalOptions) {
    super(parseService(options.service, 5222), { ...options, maxStanzaBytes: options.maxStanzaBytes ?? 256 * 1024 });
    this.#options = options;
    this.#jid = `${options.username}@${options.domain}`;
    this.#resource = options.resource;
  }

  /** The bound full JID (`user@domain/resource`); the bare JID before the first bind. */
  get address(): string {
    return this.#jid;
  }

  /** The SASL mechanism of the last login. */
  get mechanism(): SaslMechanismName | undefined {
    return this.#mechanismUsed;
  }

  static async connect(options: ClientTransportOptions): Promise<ClientTransport> {
    validate(options);
    const t = new ClientTransport(options);
    const wait: WaitOptions = { signal: options.signal, timeout: options.timeout };
    const { host, port } = parseService(options.service, 5222);
    try {
      await t._start(wait);
    } catch (err) {
      // Name the account and the server: a process may hold several connections.
      throw withConnectionContext(err, `client ${options.username}@${options.domain} at ${host}:${port}`);
    }
    return t;
  }

  async #features(link: StreamLink, signal: AbortSignal): Promise<Element> {
    await link.openStream(streamHeader(this.#options.domain), signal);
    const features = await link.next(signal);
    if (localName(features) !== 'features')
      throw new ProtocolError(`expected <stream:features>, got <${features.name}>`);
    return features;
  }

  protected async _negotiate(link: StreamLink, signal: AbortSignal): Promise<void> {
    const o = this.#options;
    let features = await this.#features(link, signal);

    if (!findChild(features, 'starttls', NS_TLS) && o.tls?.required) {
      throw new ConnectionError('the server offers no STARTTLS and tls.required is set', { retryable: false });
    }
    if (findChild(features, 'starttls', NS_TLS)) {
      link.write(`<starttls xmlns='${NS_TLS}'/>`);
      const answer = await link.next(signal);
      if (localName(answer) !== 'proceed') throw new ConnectionError('the server refused STARTTLS');
      try {
        await link.upgradeTls(
          {
            servername: o.tls?.servername ?? o.domain,
            rejectUnauthorized: o.tls?.rejectUnauthorized ?? true,
            ca: o.tls?.ca,
          },
          signal,
        );
      } catch (err) {
        throw certificateError(err);
      }
      features = await this.#features(link, signal);
    }

    await this.#authenticate(link, features, signal);
    features = await this.#features(link, signal);

    if (!findChild(features, 'bind', NS_BIND)) throw new ProtocolError('the server offers no resource binding');
    const bindId = `bind-${++this.#seq}`;
    const resource = this.#resource ? `<resource>${escapeXML(this.#resource)}</resource>` : '';
    link.write(`<iq type='set' id='${bindId}'><bind xmlns='${NS_BIND}'>${resource}</bind></iq>`);
    const bound = await this.#iqResult(link, bindId, signal);
    const bindEl = findChild(bound, 'bind');
    const jidEl = bindEl && findChild(bindEl, 'jid');
    const jid = jidEl ? textOf(jidEl) : '';
    if (!jid.includes('/')) throw new ProtocolError('resource binding returned no full JID');
    this.#jid = jid;
    this.#resource = jid.slice(jid.indexOf('/') + 1);

    // RFC 3921 session establishment, only when the server still requires it.
    const session = findChild(features, 'session', NS_SESSION);
    if (session && !findChild(session, 'optional')) {
      const sessionId = `sess-${++this.#seq}`;
      link.write(`<iq type='set' id='${sessionId}'><session xmlns='${NS_SESSION}'/></iq>`);
      await this.#iqResult(link, sessionId, signal);
    }

    if (o.initialPresence !== false) link.write('<presence/>');
  }

  async #iqResult(link: StreamLink, id: string, signal: AbortSignal): Promise<Element> {
    for (;;) {
      const el = await link.next(signal);
      if (el.name !== 'iq' || el.attrs['id'] !== id) continue; // nothing else is expected before bind
      if (el.attrs['type'] === 'result') return el;
      const err = StanzaError.fromElement(el);
      throw new ProtocolError(`iq ${id} failed: ${err.condition}`, { cause: err });
    }
  }

  #chooseMechanism(offered: string[], secure: boolean): SaslMechanismName {
    const o = this.#options;
    const plainOk = secure || o.allowPlainWithoutTls === true;
    if (o.mechanism) {
      if (!offered.includes(o.mechanism))
        throw new ConfigError(`the server does not offer ${o.mechanism} (offers ${offered.join(', ') || 'nothing'})`);
      if (o.mechanism === 'PLAIN' && !plainOk)
        throw new ConfigError('PLAIN over an unencrypted stream needs allowPlainWithoutTls: true');
      return o.mechanism;
    }
    for (const m of MECHANISM_PREFERENCE) {
      if (!offered.includes(m)) continue;
      if (m === 'PLAIN' && !plainOk) continue;
      return m;
    }
    throw new ConfigError(`no usable SASL mechanism (server offers ${offered.join(', ') || 'nothing'})`);
  }

  async #authenticate(link: StreamLink, features: Element, signal: AbortSignal): Promise<void> {
    const mechs = findChild(features, 'mechanisms', NS_SASL);
    if (!mechs) throw new ProtocolError('the server offers no SASL authentication');
    const offered = mechs.children.filter((c): c is Element => typeof c !== 'string').map((c) => textOf(c).trim());
    const mechanism = this.#chooseMechanism(offered, link.secure);
    const password: unknown = await resolveSecret(this.#options.password);
    if (typeof password !== 'string' || password === '')
      throw new ConfigError(
        `the \`password\` option gave ${password === '' ? 'an empty string' : String(password)} (an unset environment variable reads as undefined)`,
      );
    const username = this.#options.username;
    const session: SaslSession =
      mechanism === 'PLAIN' ? plain(username, password) : scram(mechanism, username, password);
    link.write(
      `<auth xmlns='${NS_SASL}' mechanism='${mechanism}'>${Buffer.from(session.initial(), 'utf8').toString('base64')}</auth>`,
    );
    for (;;) {
      const el = await link.next(signal);
      const name = localName(el);
      const data = Buffer.from(textOf(el).trim(), 'base64').toString('utf8');
      if (name === 'challenge') {
        const response = await session.challenge(data);
        link.write(`<response xmlns='${NS_SASL}'>${Buffer.from(response, 'utf8').toString('base64')}</response>`);
      } else if (name === 'success') {
        session.success(data);
        this.#mechanismUsed = mechanism;
        return;
      } else if (name === 'failure') {
        const condition = el.children.find((c): c is Element => typeof c !== 'string' && localName(c) !== 'text');
        const textEl = findChild(el, 'text');
        throw new AuthError(
          `SASL ${mechanism} failed: ${condition ? localName(condition) : 'failure'}${textEl ? ` (${textOf(textEl)})` : ''}`,
        );
      } else {
        throw new ProtocolError(`unexpected <${el.name}> during SASL`);
      }
    }
  }
}

function validate(options: ClientTransportOptions): void {
  if (!options || typeof options !== 'object') throw new ConfigError('options are required');
  for (const key of ['service', 'domain', 'username'] as const) {
    if (typeof options[key] !== 'string' || options[key] === '') throw new ConfigError(`${key} is required`);
  }
  if ((typeof options.password !== 'string' || options.password === '') && typeof options.password !== 'function')
    throw new ConfigError(
      `client ${options.username}@${options.domain}: the \`password\` option is ${options.password === '' ? 'empty' : 'missing'} ` +
        '(a string or a function returning it; an unset environment variable reads as undefined)',
    );
  if (options.mechanism !== undefined && !MECHANISM_PREFERENCE.includes(options.mechanism))
    throw new ConfigError(`unknown SASL mechanism '${String(options.mechanism)}'`);
  parseService(options.service, 5222); // throws ConfigError
}

/**
 * Logs in and resolves once online (bound, initial presence sent). Rejects with AuthError (bad
 * credentials), ConfigError (no acceptable SASL mechanism), ConnectionError, TimeoutError or
 * the abort reason; nothing keeps running after a rejection.
 */
export function clientTransport(options: ClientTransportOptions): Promise<ClientTransport> {
  return ClientTransport.connect(options);
}
