/**
 * Starts Debian's Prometheus (`/usr/bin/prometheus`, installed by scripts/install-servers.sh) on a
 * free loopback port with a generated config and a temp TSDB dir, scraping `targets` every
 * `scrapeInterval`. The packaged system service is never used. `await using prom = await
 * startPrometheus({ targets: ['127.0.0.1:9464'] })`; `query()` calls the HTTP API.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConnectionError, ProtocolError, TimeoutError } from '@xmppbus/core';
import {
  DIR_PREFIX,
  freePort,
  signalProcess as signal,
  trackServer,
  untrackServer,
  waitGone,
} from '@xmppbus/server/testing';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface PrometheusOptions {
  /** `host:port` of the endpoints to scrape (path `/metrics`). */
  targets: readonly string[];
  /** Scrape interval, e.g. `1s` (default). */
  scrapeInterval?: string;
  /** The binary (default `/usr/bin/prometheus`). */
  binary?: string;
  /** How long to wait for readiness, ms (default 30 000). */
  timeout?: number;
}

/** One sample of an instant vector (`/api/v1/query`, resultType `vector`). */
export interface PrometheusSample {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: readonly [number, string];
}

export interface Prometheus extends AsyncDisposable {
  readonly url: string;
  readonly pid: number;
  readonly dir: string;
  /** Runs an instant query; resolves with the samples (empty when nothing matches yet). */
  query(promql: string): Promise<PrometheusSample[]>;
  /** Prometheus's own output so far (for failure reports). */
  logs(): string;
  stop(): Promise<void>;
}

export async function startPrometheus(options: PrometheusOptions): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}prometheus-`));
  const port = await freePort();
  const interval = options.scrapeInterval ?? '1s';
  const targets = options.targets.map((t) => `'${t}'`).join(', ');
  writeFileSync(
    join(dir, 'prometheus.yml'),
    [
      'global:',
      `  scrape_interval: ${interval}`,
      `  evaluation_interval: ${interval}`,
      'scrape_configs:',
      "  - job_name: 'xmppbus'",
      `    scrape_interval: ${interval}`,
      `    static_configs: [{ targets: [${targets}] }]`,
      '',
    ].join('\n'),
  );
  const child = spawn(
    options.binary ?? '/usr/bin/prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const append = (b: Buffer): void => {
    out = (out + b.toString()).slice(-50_000);
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  const spawned = await new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid ?? 0));
    child.once('error', (err) =>
      reject(new ConnectionError(`prometheus did not start: ${err.message}`, { cause: err })),
    );
  });
  trackServer(dir, spawned);
  const url = `http://127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      signal(spawned, 'SIGTERM');
      try {
        await waitGone(spawned, 10_000);
      } catch {
        signal(spawned, 'SIGKILL');
        await waitGone(spawned, 5_000);
      }
      untrackServer(dir);
      rmSync(dir, { recursive: true, force: true });
    })());
  const deadline = Date.now() + (options.timeout ?? 30_000);
  for (;;) {
    try {
      const res = await fetch(`${url}/-/ready`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new TimeoutError(`prometheus not ready on ${url} (exit ${String(child.exitCode)}): ${out.slice(-2000)}`);
    }
    await sleep(50);
  }
  return {
    url,
    pid: spawned,
    dir,
    logs: () => out,
    async query(promql: string): Promise<PrometheusSample[]> {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
      const body = (await res.json()) as { status: string; error?: string; data?: { result?: PrometheusSample[] } };
      if (body.status !== 'success') throw new ProtocolError(`prometheus query ${promql}: ${body.error ?? res.status}`);
      return body.data?.result ?? [];
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
