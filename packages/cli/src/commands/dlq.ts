/**
 * `xmppbus dlq list|show|replay|purge`: the dead letters in a service's SQLite store
 * (`messaging.store.path` of its config, or `--store`). `list`, `show` and `purge` only open the
 * file. `replay` connects as the service (its config's identity) and delivers the messages now;
 * with `--offline` it moves them back to the outbox for the service's next start. Stop the
 * service before an online replay: its connection and outbox would compete with the CLI's.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigError, ConflictError } from '@xmppbus/core';
import type { DeadLetter, MessageStore } from '@xmppbus/messaging';
import type * as StoreSqlite from '@xmppbus/store-sqlite';
import type { Context } from '../context.js';
import { EXIT, UsageError, type ExitCode } from '../errors.js';
import type { Wrap } from '../action.js';

interface StoreFlags {
  store?: string;
}
interface ListFlags extends StoreFlags {
  to?: string;
  limit?: string;
}
interface BulkFlags extends StoreFlags {
  all?: boolean;
}
interface ReplayFlags extends BulkFlags {
  offline?: boolean;
}

export function registerDlq(program: Command, wrap: Wrap): void {
  const dlq = program
    .command('dlq')
    .description("inspect, replay or purge the dead letters in a service's SQLite store");
  const storeOption = ['--store <path>', 'the SQLite file (default: messaging.store.path of the config)'] as const;
  dlq
    .command('list')
    .description('list dead letters, oldest first')
    .option(...storeOption)
    .option('--to <jid>', 'only those addressed to this JID')
    .option('--limit <n>', 'at most this many')
    .action(wrap(list));
  dlq
    .command('show')
    .description('show one dead letter with its message')
    .argument('<id>', 'the message id')
    .option(...storeOption)
    .action(wrap(show));
  dlq
    .command('replay')
    .description('send dead letters again, as the service (stop the service first), or queue them with --offline')
    .argument('[ids...]', 'message ids')
    .option('--all', 'every dead letter')
    .option('--offline', 'only move them back to the outbox: the service sends them at its next start')
    .option(...storeOption)
    .action(wrap(replay));
  dlq
    .command('purge')
    .description('delete dead letters for good')
    .argument('[ids...]', 'message ids')
    .option('--all', 'every dead letter')
    .option(...storeOption)
    .action(wrap(purge));
  for (const cmd of dlq.commands) cmd.exitOverride();
}

/** The store file: `--store`, else the config's `messaging.store.path`; it must exist. */
async function storePath(ctx: Context, flags: StoreFlags): Promise<string> {
  let path = flags.store;
  if (path === undefined) {
    path = (await ctx.config({ asService: true })).config.messaging?.store?.path;
    if (path === undefined)
      throw new UsageError('no store: give --store <file> or set messaging.store.path (XMPPBUS_MESSAGING_STORE_PATH)');
  }
  const abs = resolve(ctx.io.cwd, path);
  if (!existsSync(abs)) throw new UsageError(`store ${abs} does not exist`);
  return abs;
}

/** Opens the SQLite store (loaded only here: the native addon is needed by `dlq` alone). */
async function openStore(path: string): Promise<MessageStore> {
  let mod: typeof StoreSqlite;
  try {
    mod = await import('@xmppbus/store-sqlite');
  } catch (err) {
    throw new ConfigError('dlq needs @xmppbus/store-sqlite: npm install @xmppbus/store-sqlite', { cause: err });
  }
  const store = mod.sqliteMessageStore({ path });
  await store.open();
  return store;
}

async function withStore<T>(ctx: Context, flags: StoreFlags, fn: (store: MessageStore) => Promise<T>): Promise<T> {
  const store = await openStore(await storePath(ctx, flags));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** A dead letter as printed: times as ISO strings. */
function view(d: DeadLetter): Record<string, unknown> {
  return {
    id: d.id,
    to: d.to,
    qos: d.qos,
    payload: d.payload,
    reason: d.reason,
    error: d.error ?? null,
    attempts: d.attempts,
    createdAt: new Date(d.createdAt).toISOString(),
    deadAt: new Date(d.deadAt).toISOString(),
    expiresAt: d.expiresAt === null ? null : new Date(d.expiresAt).toISOString(),
  };
}

async function list(ctx: Context, flags: ListFlags): Promise<void> {
  const limit = flags.limit === undefined ? undefined : Number(flags.limit);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1))
    throw new UsageError(`--limit must be an integer >= 1, got '${flags.limit}'`);
  const letters = await withStore(ctx, flags, (s) =>
    s.listDeadLetters({ ...(limit !== undefined && { limit }), ...(flags.to !== undefined && { to: flags.to }) }),
  );
  if (ctx.out.json) {
    for (const d of letters) ctx.out.result(view(d), () => '');
    return;
  }
  if (letters.length === 0) {
    ctx.out.line('no dead letters');
    return;
  }
  const rows = letters.map((d) => [
    d.id,
    d.to,
    d.payload,
    d.qos,
    d.reason,
    d.attempts,
    new Date(d.deadAt).toISOString().replace('T', ' ').slice(0, 19),
    (d.error ?? '').slice(0, 60),
  ]);
  ctx.out.line(ctx.out.table(['ID', 'TO', 'PAYLOAD', 'QOS', 'REASON', 'ATTEMPTS', 'DEAD AT (UTC)', 'ERROR'], rows));
}

async function show(ctx: Context, id: string, flags: StoreFlags): Promise<ExitCode> {
  const d = await withStore(ctx, flags, (s) => s.getDeadLetter(id));
  if (d === undefined) throw new UsageError(`no dead letter ${id}`);
  const full = { ...view(d), stanza: d.stanza };
  ctx.out.result(full, () =>
    [
      ...Object.entries(view(d)).map(([k, v]) => `${ctx.out.c.bold(k.padEnd(10))} ${v === null ? '-' : String(v)}`),
      ctx.out.c.bold('stanza'),
      d.stanza,
    ].join('\n'),
  );
  return EXIT.ok;
}

/** The ids named, or every dead letter's with --all. */
async function targets(store: MessageStore, ids: string[], flags: BulkFlags): Promise<string[]> {
  if (flags.all && ids.length > 0) throw new UsageError('give ids or --all, not both');
  if (flags.all) return (await store.listDeadLetters()).map((d) => d.id);
  if (ids.length === 0) throw new UsageError('give the ids of the dead letters, or --all');
  return ids;
}

async function purge(ctx: Context, ids: string[], flags: BulkFlags): Promise<ExitCode> {
  const results = await withStore(ctx, flags, async (s) => {
    const out: { id: string; removed: boolean }[] = [];
    for (const id of await targets(s, ids, flags)) out.push({ id, removed: await s.removeDeadLetter(id) });
    return out;
  });
  for (const r of results) ctx.out.result(r, () => (r.removed ? `purged ${r.id}` : `no dead letter ${r.id}`));
  if (results.length === 0) ctx.out.line('no dead letters');
  return results.every((r) => r.removed) ? EXIT.ok : EXIT.error;
}

type ReplayOutcome = 'delivered' | 'queued' | 'dead-again' | 'not-found';

async function replay(ctx: Context, ids: string[], flags: ReplayFlags): Promise<ExitCode> {
  const path = await storePath(ctx, flags);
  const outcomes = flags.offline ? await replayOffline(path, ids, flags) : await replayOnline(ctx, path, ids, flags);
  for (const o of outcomes) ctx.out.result(o, () => `${o.id}: ${o.outcome}${o.error ? ` (${o.error})` : ''}`);
  if (outcomes.length === 0) ctx.out.line('no dead letters');
  return outcomes.every((o) => o.outcome === 'delivered' || o.outcome === 'queued') ? EXIT.ok : EXIT.error;
}

async function replayOffline(path: string, ids: string[], flags: BulkFlags) {
  const store = await openStore(path);
  try {
    const out: { id: string; outcome: ReplayOutcome; error?: string }[] = [];
    for (const id of await targets(store, ids, flags)) {
      const back = await store.replayDeadLetter(id, Date.now(), null);
      out.push({ id, outcome: back ? 'queued' : 'not-found' });
    }
    return out;
  } finally {
    await store.close();
  }
}

async function replayOnline(ctx: Context, path: string, ids: string[], flags: BulkFlags) {
  // The service's identity and its store: the replayed messages go out as the service's own.
  const bus = await ctx
    .connect({
      asService: true,
      keepStore: true,
      adjust: (c) => ({ ...c, messaging: { ...c.messaging, store: { ...c.messaging?.store, path } } }),
    })
    .catch((err: unknown) => {
      if (err instanceof ConflictError)
        throw new ConflictError(`${err.message}: the service seems to be running; stop it first, or use --offline`, {
          cause: err,
        });
      throw err;
    });
  const messenger = bus.messenger;
  const wait = { timeout: ctx.timeout, signal: ctx.signal };
  await messenger.start(wait);
  const list = await messenger.deadLetters.list();
  const wanted = flags.all ? list.map((d) => d.id) : ids;
  if (!flags.all && ids.length === 0) throw new UsageError('give the ids of the dead letters, or --all');
  const out: { id: string; outcome: ReplayOutcome; error?: string }[] = [];
  const replayed: string[] = [];
  for (const id of wanted) {
    if (await messenger.deadLetters.replay(id)) replayed.push(id);
    else out.push({ id, outcome: 'not-found' });
  }
  // Every message (these and any the outbox still held) delivered or dead again.
  await messenger.flush(wait);
  for (const id of replayed) {
    const again = await messenger.deadLetters.get(id);
    out.push(
      again ? { id, outcome: 'dead-again', ...(again.error && { error: again.error }) } : { id, outcome: 'delivered' },
    );
  }
  return out;
}
