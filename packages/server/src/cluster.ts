/**
 * A local ejabberd cluster (Erlang distribution + mnesia) for development and CI: N nodes on
 * 127.0.0.1, each with its own free ports and temp dir, one random cookie per run, fixed
 * distribution ports found through a tiny epmd module instead of epmd (no 0.0.0.0:4369), DNS-free
 * (`s2s_access: none`, inetrc without resolv.conf). Facts behind every choice: scale.md part A.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ConfigError, ConnectionError, sleep, TimeoutError } from '@xmppbus/core';

import {
  EPMD_MODULE,
  EPMD_MODULE_SOURCE,
  ctlArgs,
  domainBalancingYaml,
  epmdArgs,
  parseListCluster,
  planNodes,
  type ClusterNodePlan,
  type ComponentBalancing,
} from './cluster-config.js';
import { EjabberdServer, erlLibs } from './ejabberd.js';
import { componentHandshake } from './handshake.js';
import { resolveOptions } from './options.js';
import { freePort } from './ports.js';
import { DIR_PREFIX, processState, signal, trackServer, untrackServer, waitGone } from './proc.js';
import type { AccountSpec, ComponentSpec, XmppServer } from './types.js';

export interface StartClusterOptions {
  /** Number of nodes (default 2). */
  nodes?: number;
  /** The XMPP domain (default `localhost`). */
  domain?: string;
  /** Components the cluster accepts; with the shared secret any name may connect to any node. */
  components?: (string | ComponentSpec)[];
  /** Shared component secret (default random). */
  componentSecret?: string;
  /** c2s accounts, registered once (mnesia replicates them to every node). */
  accounts?: AccountSpec[];
  /**
   * Cluster-wide spreading of component names that connect more than once (`domain_balancing`).
   * Not needed for the bus's own balancer, which addresses each instance by its own name.
   */
  balancing?: Record<string, ComponentBalancing>;
  /** Per-node start timeout, ms (default 60 000). */
  startTimeout?: number;
}

/** One node: a normal server handle plus its Erlang node name. */
export interface ClusterNode extends XmppServer {
  /** `xmppbus-<run>-<i>@localhost` */
  readonly nodeName: string;
}

/** A running cluster. `await using c = await startEjabberdCluster()` stops it at the end of the scope. */
export interface EjabberdCluster extends AsyncDisposable {
  readonly nodes: readonly ClusterNode[];
  readonly domain: string;
  readonly pubsubService: string;
  readonly componentSecret: string;
  /** `xmpp://127.0.0.1:<port>` of every node's component listener, in node order. */
  componentServices(): string[];
  /** The nodes a node's `list_cluster` reports (running members only), sorted. */
  members(node: number | ClusterNode): Promise<string[]>;
  /** Resolves once every running node lists exactly the running nodes; rejects with TimeoutError. */
  waitConverged(options?: { timeout?: number }): Promise<void>;
  /** Signals a node's VM (default SIGKILL) and waits until it is gone; its data is kept. */
  kill(node: number | ClusterNode, sig?: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  /** Starts a node again with its data: it rejoins by itself; resolves once the cluster has converged. */
  restart(node: number | ClusterNode): Promise<void>;
  /** Stops every node, removes every temp dir; no VM, ctl VM or epmd stays behind. Idempotent. */
  stop(): Promise<void>;
}

const CTL_TIMEOUT = 60_000;
const PORT_CLASH = /eaddrinuse|address already in use/i;

/** Compiles the epmd module into `dir` (erlc ships with erlang-base, as erl does). */
function compileEpmd(dir: string): Promise<void> {
  const src = join(dir, `${EPMD_MODULE}.erl`);
  writeFileSync(src, EPMD_MODULE_SOURCE);
  return new Promise((resolve, reject) => {
    execFile('erlc', ['-o', dir, src], { timeout: CTL_TIMEOUT }, (err, stdout, stderr) => {
      if (!err) return resolve();
      reject(
        (err as NodeJS.ErrnoException).code === 'ENOENT'
          ? new ConfigError('startEjabberdCluster: erlc not found (Debian: apt-get install erlang-base)')
          : new ConnectionError(`erlc ${EPMD_MODULE}.erl failed: ${stdout}${stderr}`),
      );
    });
  });
}

class Cluster implements EjabberdCluster {
  readonly nodes: readonly (EjabberdServer & ClusterNode)[];
  readonly domain: string;
  readonly pubsubService: string;
  readonly componentSecret: string;
  readonly #plans: readonly ClusterNodePlan[];
  readonly #cookie: string;
  readonly #epmd: readonly string[];
  readonly #dir: string;
  readonly #run: string;
  /** ctl VMs still running (killed by stop()). */
  readonly #ctls = new Set<number>();
  #stopping: Promise<void> | undefined;

  constructor(options: {
    servers: readonly EjabberdServer[];
    plans: readonly ClusterNodePlan[];
    cookie: string;
    epmd: readonly string[];
    dir: string;
    run: string;
  }) {
    this.nodes = options.servers as (EjabberdServer & ClusterNode)[];
    const first = options.servers[0]!;
    this.domain = first.domain;
    this.pubsubService = first.pubsubService;
    this.componentSecret = first.componentSecret;
    this.#plans = options.plans;
    this.#cookie = options.cookie;
    this.#epmd = options.epmd;
    this.#dir = options.dir;
    this.#run = options.run;
  }

  componentServices(): string[] {
    return this.nodes.map((n) => n.componentService());
  }

  #index(node: number | ClusterNode): number {
    const i = typeof node === 'number' ? node : this.nodes.indexOf(node as EjabberdServer & ClusterNode);
    if (!Number.isInteger(i) || i < 0 || i >= this.nodes.length)
      throw new ConfigError(`cluster: no node ${typeof node === 'number' ? node : node.nodeName}`);
    return i;
  }

  #running(): number[] {
    return this.nodes.map((n, i) => (processState(n.pid) === 'running' ? i : -1)).filter((i) => i >= 0);
  }

  /** Runs one ejabberdctl command on node `i` through a short-lived hidden VM; resolves with its output. */
  ctl(i: number, command: readonly string[]): Promise<string> {
    const target = this.#plans[i]!;
    const node = this.nodes[i]!;
    const args = ctlArgs({
      target,
      cookie: this.#cookie,
      epmd: this.#epmd,
      ctlName: `xmppbus-${this.#run}-ctl${randomBytes(3).toString('hex')}`,
      command,
    });
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: this.#dir,
      LANG: 'C.UTF-8',
      ERL_LIBS: erlLibs(),
      ERL_INETRC: join(node.dir, 'inetrc'),
      ERL_CRASH_DUMP_BYTES: '0',
    };
    return new Promise((resolve, reject) => {
      const child = spawn('erl', args, { cwd: this.#dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => void (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => void (out += d.toString()));
      if (child.pid !== undefined) this.#ctls.add(child.pid);
      const timer = setTimeout(() => child.kill('SIGKILL'), CTL_TIMEOUT);
      child.once('error', (err) => reject(new ConnectionError(`ejabberdctl ${command.join(' ')}: ${err.message}`)));
      child.once('exit', (code, sig) => {
        clearTimeout(timer);
        if (child.pid !== undefined) this.#ctls.delete(child.pid);
        if (code === 0) resolve(out);
        else
          reject(
            sig === 'SIGKILL'
              ? new TimeoutError(`ejabberdctl ${command.join(' ')} on ${target.node}: no answer in ${CTL_TIMEOUT} ms`)
              : new ConnectionError(`ejabberdctl ${command.join(' ')} on ${target.node} failed (${code}): ${out}`),
          );
      });
    });
  }

  async members(node: number | ClusterNode): Promise<string[]> {
    return parseListCluster(await this.ctl(this.#index(node), ['list_cluster']));
  }

  async waitConverged(options: { timeout?: number } = {}): Promise<void> {
    const deadline = Date.now() + (options.timeout ?? CTL_TIMEOUT);
    let last = '';
    for (;;) {
      const running = this.#running();
      const want = running.map((i) => this.#plans[i]!.node).sort();
      try {
        const seen = await Promise.all(running.map((i) => this.members(i)));
        if (seen.every((m) => m.join() === want.join())) return;
        last = seen.map((m, k) => `${this.#plans[running[k]!]!.name}: [${m.join(', ')}]`).join('; ');
      } catch (err) {
        last = String(err);
      }
      if (Date.now() > deadline) throw new TimeoutError(`cluster did not converge on [${want.join(', ')}]: ${last}`);
      await sleep(200);
    }
  }

  /** Waits for a component handshake on node `i` (after join_cluster restarted ejabberd there). */
  async #waitReady(i: number, timeout: number): Promise<void> {
    const node = this.nodes[i]!;
    const deadline = Date.now() + timeout;
    for (;;) {
      try {
        await componentHandshake({
          port: node.componentPort,
          name: `harness-probe.${this.domain}`,
          secret: this.componentSecret,
          timeout: 3000,
        });
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new TimeoutError(`${node.nodeName} not ready after join`, { cause: err });
      }
      await sleep(25);
    }
  }

  /** Every node after the first joins the first, one at a time. */
  async join(timeout: number): Promise<void> {
    for (let i = 1; i < this.nodes.length; i++) {
      await this.ctl(i, ['join_cluster', this.#plans[0]!.node]);
      // join_cluster restarts ejabberd on the joining node: its listeners come back a moment later.
      await this.#waitReady(i, timeout);
    }
    await this.waitConverged({ timeout });
  }

  async kill(node: number | ClusterNode, sig: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    const n = this.nodes[this.#index(node)]!;
    if (sig === 'SIGKILL') return n.kill();
    signal(n.pid, sig);
    await waitGone(n.pid, CTL_TIMEOUT);
  }

  async restart(node: number | ClusterNode): Promise<void> {
    // The spool keeps the mnesia schema naming every node: the node rejoins by itself.
    await this.nodes[this.#index(node)]!.restart();
    await this.waitConverged();
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      try {
        await Promise.all(this.nodes.map((n) => n.stop()));
      } finally {
        for (const pid of this.#ctls) signal(pid, 'SIGKILL');
        await Promise.all([...this.#ctls].map((pid) => waitGone(pid, 10_000).catch(() => undefined)));
        untrackServer(this.#dir);
        rmSync(this.#dir, { recursive: true, force: true });
      }
    })();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

async function attempt(options: StartClusterOptions, count: number): Promise<Cluster> {
  const run = randomBytes(4).toString('hex');
  const cookie = randomBytes(16).toString('hex');
  const distPorts: number[] = [];
  for (let i = 0; i < count; i++) distPorts.push(await freePort());
  const plans = planNodes(run, distPorts);
  // Holds the epmd module: the nodes run as user ejabberd, so it must be world-readable.
  const dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}cluster-`));
  chmodSync(dir, 0o755);
  // No process of its own (pid 0): removed at exit, or by the next harness run if this one dies hard.
  trackServer(dir, 0);
  const servers: EjabberdServer[] = [];
  let cluster: Cluster | undefined;
  try {
    await compileEpmd(dir);
    const epmd = epmdArgs(dir, plans);
    const yaml = domainBalancingYaml(options.balancing ?? {});
    const resolved = resolveOptions({
      kind: 'ejabberd',
      domain: options.domain,
      components: options.components,
      componentSecret: options.componentSecret,
      startTimeout: options.startTimeout,
    });
    for (const p of plans) servers.push(new EjabberdServer(resolved, { ...p, cookie, erlArgs: epmd, yaml }));
    cluster = new Cluster({ servers, plans, cookie, epmd, dir, run });
    await Promise.all(servers.map((s) => s.start()));
    await cluster.join(resolved.startTimeout);
    // Accounts live in mnesia: registered once, on node 1, they exist on every node.
    if (options.accounts?.length) await servers[0]!.registerUsers(options.accounts);
    return cluster;
  } catch (err) {
    if (cluster) await cluster.stop();
    else {
      await Promise.all(servers.map((s) => s.stop()));
      untrackServer(dir);
      rmSync(dir, { recursive: true, force: true });
    }
    throw err;
  }
}

/**
 * Starts an ejabberd cluster of `nodes` (default 2) on 127.0.0.1 and resolves once every node
 * lists every other one and takes component connections. Rejects with ServerNotInstalledError
 * (no ejabberd), ConfigError (bad options, no erlc), TimeoutError or ConnectionError.
 */
export async function startEjabberdCluster(options: StartClusterOptions = {}): Promise<EjabberdCluster> {
  const count = options.nodes ?? 2;
  if (!Number.isInteger(count) || count < 1 || count > 8)
    throw new ConfigError(`startEjabberdCluster: nodes must be an integer 1..8, got ${String(count)}`);
  for (let tries = 1; ; tries++) {
    try {
      return await attempt(options, count);
    } catch (err) {
      // Another process took a picked port between the check and the bind: once more, new ports.
      if (tries >= 2 || !PORT_CLASH.test(String(err))) throw err;
    }
  }
}
