import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ConfigError,
  XmppBusError,
  silentLogger,
  systemClock,
  type Clock,
  type Logger,
  type TimerHandle,
} from '@xmppbus/core';
import type { FleetEvent, FleetSource, FleetValue } from '../monitor/fleet.js';
import { uplotAssets, type Asset } from './assets.js';
import { DASHBOARD_CSS, dashboardHtml } from './page.js';
import { DASHBOARD_JS } from './page-script.js';

export interface DashboardOptions {
  /** Where values, alerts and presence come from, and where commands go (a `Monitor`). */
  source: FleetSource;
  /** Interface to bind (default '127.0.0.1': the dashboard has no authentication of its own). */
  host?: string;
  /** Port (default 0: a free one; read `url` after `start()`). */
  port?: number;
  /** Page title (default 'xmppbus fleet'). */
  title?: string;
  /** Live Server-Sent-Events clients at once; more get 503 (default 32). */
  maxClients?: number;
  /** Bytes a client may leave unread before it is dropped; its browser reconnects and gets a fresh snapshot (default 1 MiB). */
  maxBufferedBytes?: number;
  /** Comment line sent to idle clients so dead connections are noticed, ms (default 15 000). */
  heartbeatMs?: number;
  /** Bound on a command sent from the page, ms (default 10 000). */
  controlTimeout?: number;
  clock?: Clock;
  logger?: Logger;
}

export type DashboardStatus = 'idle' | 'listening' | 'closed';

const MAX_BODY = 4096;
const MAX_PENDING_EVENTS = 10_000;
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface Client {
  readonly res: ServerResponse;
}

/** The host of an Origin header; undefined for `null` (sandboxed pages, file:) or anything unparsable. */
function hostOf(origin: string): string | undefined {
  try {
    return new URL(origin).host || undefined;
  } catch {
    return undefined;
  }
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new ConfigError(`dashboard: ${name} must be an integer >= 1`);
  return value;
}

/**
 * The live fleet dashboard: one page (agents, presence, latest values with units, sparklines,
 * active alerts, control buttons) kept current by Server-Sent Events, served with node:http.
 *
 * Security: it binds loopback by default and has no login; agent data is untrusted and is only
 * ever put into the page as text (the page never uses innerHTML for it) under a CSP that allows
 * no inline script; commands must be JSON POSTs from the dashboard's own origin.
 */
export class Dashboard implements AsyncDisposable {
  readonly #source: FleetSource;
  readonly #host: string;
  readonly #port: number;
  readonly #title: string;
  readonly #maxClients: number;
  readonly #maxBuffered: number;
  readonly #heartbeatMs: number;
  readonly #controlTimeout: number;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #clients = new Set<Client>();
  #server: Server | undefined;
  #status: DashboardStatus = 'idle';
  #url = '';
  #unsubscribe: (() => void) | undefined;
  #pending: FleetEvent[] = [];
  #overflow = false;
  #flushScheduled = false;
  #heartbeat: TimerHandle | undefined;
  #dropped = 0;

  constructor(options: DashboardOptions) {
    if (typeof options?.source?.snapshot !== 'function') throw new ConfigError('dashboard: source is required');
    this.#source = options.source;
    this.#host = options.host ?? '127.0.0.1';
    this.#port = options.port ?? 0;
    if (!Number.isInteger(this.#port) || this.#port < 0 || this.#port > 65535)
      throw new ConfigError('dashboard: port must be 0..65535');
    this.#title = options.title ?? 'xmppbus fleet';
    this.#maxClients = positiveInt('maxClients', options.maxClients, 32);
    this.#maxBuffered = positiveInt('maxBufferedBytes', options.maxBufferedBytes, 1 << 20);
    this.#heartbeatMs = positiveInt('heartbeatMs', options.heartbeatMs, 15_000);
    this.#controlTimeout = positiveInt('controlTimeout', options.controlTimeout, 10_000);
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
  }

  get status(): DashboardStatus {
    return this.#status;
  }

  /** `http://127.0.0.1:<port>/` once started. */
  get url(): string {
    return this.#url;
  }

  /** Live event-stream clients, and how many were dropped for not reading. */
  get clients(): { connected: number; dropped: number } {
    return { connected: this.#clients.size, dropped: this.#dropped };
  }

  async start(): Promise<string> {
    if (this.#status !== 'idle') throw new XmppBusError('ERR_CLOSED', `dashboard is ${this.#status}`);
    const server = createServer((req, res) => this.#handle(req, res));
    server.on('clientError', (_err, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, this.#host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    const { port } = server.address() as AddressInfo;
    const host = this.#host.includes(':') ? `[${this.#host}]` : this.#host;
    this.#url = `http://${host}:${port}/`;
    this.#unsubscribe = this.#source.subscribe((e) => this.#push(e));
    this.#status = 'listening';
    this.#armHeartbeat();
    return this.#url;
  }

  /** Ends every event stream and stops listening. Idempotent. */
  async close(): Promise<void> {
    if (this.#status === 'closed') return;
    this.#status = 'closed';
    this.#unsubscribe?.();
    this.#heartbeat?.cancel();
    for (const c of this.#clients) c.res.end();
    this.#clients.clear();
    const server = this.#server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** Same as close(): a dashboard has nothing in flight worth waiting for. */
  drain(): Promise<void> {
    return this.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #armHeartbeat(): void {
    this.#heartbeat = this.#clock.setTimeout(() => {
      if (this.#status !== 'listening') return;
      this.#write(': ping\n\n');
      this.#armHeartbeat();
    }, this.#heartbeatMs);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    // DNS rebinding: a page on another name must not reach a loopback dashboard.
    if (!this.#hostAllowed(req.headers.host)) return this.#text(res, 421, 'misdirected request');
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (req.method === 'GET' || req.method === 'HEAD') {
        if (path === '/') return this.#page(res);
        if (path === '/app.js') return this.#asset(res, { type: 'text/javascript; charset=utf-8', body: DASHBOARD_JS });
        if (path === '/app.css') return this.#asset(res, { type: 'text/css; charset=utf-8', body: DASHBOARD_CSS });
        if (path === '/vendor/uPlot.js') return this.#asset(res, uplotAssets().js);
        if (path === '/vendor/uPlot.css') return this.#asset(res, uplotAssets().css);
        if (path === '/favicon.ico') return void res.writeHead(204).end();
        if (path === '/api/state') return this.#json(res, 200, this.#source.snapshot());
        if (path === '/events') return this.#events(req, res);
        return this.#text(res, 404, 'not found');
      }
      if (req.method === 'POST' && path === '/api/control') return this.#control(req, res);
      res.setHeader('Allow', 'GET, HEAD, POST');
      return this.#text(res, 405, 'method not allowed');
    } catch (err) {
      this.#logger.error('dashboard: request failed', err);
      if (!res.headersSent) this.#text(res, 500, 'internal error');
      else res.destroy();
    }
  }

  #hostAllowed(host: string | undefined): boolean {
    if (!host) return false;
    // Bound to a real interface on purpose: a reverse proxy may rewrite Host.
    if (!['127.0.0.1', '::1', 'localhost'].includes(this.#host)) return true;
    const port = new URL(this.#url).port;
    return [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`].includes(host.toLowerCase());
  }

  #page(res: ServerResponse): void {
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': CSP,
      'Cache-Control': 'no-store',
    });
    res.end(dashboardHtml(this.#title));
  }

  #asset(res: ServerResponse, asset: Asset | { type: string; body: string }): void {
    res.writeHead(200, { 'Content-Type': asset.type, 'Cache-Control': 'no-cache' });
    res.end(asset.body);
  }

  #text(res: ServerResponse, status: number, text: string): void {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(text);
  }

  #json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(JSON.stringify(body));
  }

  #events(req: IncomingMessage, res: ServerResponse): void {
    if (this.#clients.size >= this.#maxClients) return this.#text(res, 503, 'too many dashboard clients');
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
    });
    res.socket?.setNoDelay(true);
    const client: Client = { res };
    this.#clients.add(client);
    const gone = (): void => void this.#clients.delete(client);
    req.on('close', gone);
    res.on('error', gone);
    // A fresh full picture on every (re)connect: the browser needs no replay of missed events.
    this.#send(client, `retry: 1000\nevent: snapshot\ndata: ${JSON.stringify(this.#source.snapshot())}\n\n`);
  }

  #control(req: IncomingMessage, res: ServerResponse): void {
    // Cross-site requests cannot send a JSON content type without a preflight we never answer,
    // and a browser's Origin must be ours: together, no CSRF from other pages.
    const type = req.headers['content-type'] ?? '';
    if (!type.startsWith('application/json')) return this.#json(res, 415, { error: 'expected application/json' });
    const origin = req.headers.origin;
    if (origin !== undefined && `${origin}/` !== this.#url && !this.#hostAllowed(hostOf(origin)))
      return this.#json(res, 403, { error: 'cross-origin command refused' });
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        this.#json(res, 413, { error: 'body too large' });
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return this.#json(res, 400, { error: 'invalid JSON' });
      }
      const cmd = parseCommand(body);
      if (!cmd) return this.#json(res, 400, { error: 'expected { agent, parameter, value }' });
      this.#source.control(cmd.agent, cmd.parameter, cmd.value, { timeout: this.#controlTimeout }).then(
        // 202 for a command queued for an offline agent: the page shows it until it is delivered.
        (outcome) =>
          outcome?.state === 'queued'
            ? this.#json(res, 202, { ok: true, state: 'queued', id: outcome.id })
            : this.#json(res, 200, { ok: true, state: 'applied' }),
        (err: unknown) => {
          const e = err instanceof Error ? err : new Error(String(err));
          const code = err instanceof XmppBusError ? err.code : undefined;
          this.#logger.warn(`dashboard: command ${cmd.parameter} to ${cmd.agent} failed: ${e.message}`);
          this.#json(res, 502, { error: e.message, code });
        },
      );
    });
  }

  #push(event: FleetEvent): void {
    if (this.#clients.size === 0) return;
    if (this.#pending.length >= MAX_PENDING_EVENTS) this.#overflow = true;
    else this.#pending.push(event);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // Events of one turn go out as one SSE message: a fleet update burst is one write per client.
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#flushScheduled = false;
    const events = this.#pending;
    this.#pending = [];
    if (this.#status !== 'listening') return;
    if (this.#overflow) {
      // More changed in one turn than is worth sending one by one: send the picture instead.
      this.#overflow = false;
      this.#write(`event: snapshot\ndata: ${JSON.stringify(this.#source.snapshot())}\n\n`);
      return;
    }
    if (events.length > 0) this.#write(`event: batch\ndata: ${JSON.stringify(events)}\n\n`);
  }

  #write(text: string): void {
    for (const c of this.#clients) this.#send(c, text);
  }

  #send(client: Client, text: string): void {
    const { res } = client;
    if (res.destroyed) return void this.#clients.delete(client);
    res.write(text);
    // A client that does not read is dropped, never buffered for without bound.
    if (res.writableLength > this.#maxBuffered) {
      this.#dropped++;
      this.#clients.delete(client);
      this.#logger.warn('dashboard: dropped a slow event-stream client');
      res.destroy();
    }
  }
}

function parseCommand(body: unknown): { agent: string; parameter: string; value: FleetValue } | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { agent, parameter, value } = body as Record<string, unknown>;
  if (typeof agent !== 'string' || agent.length === 0 || agent.length > 3071) return undefined;
  if (typeof parameter !== 'string' || parameter.length === 0 || parameter.length > 1024) return undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return { agent, parameter, value };
  if (typeof value === 'boolean' || (typeof value === 'string' && value.length <= 1024))
    return { agent, parameter, value };
  return undefined;
}
