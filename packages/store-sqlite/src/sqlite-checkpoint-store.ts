/**
 * A durable pubsub `CheckpointStore` in one SQLite table, so a consumer resumes where it stopped
 * after a restart. It may share its file with a `SqliteMessageStore` (separate connections; WAL
 * lets them interleave). Each `save` is one autocommit: checkpoints are written once per
 * processed batch, far less often than outbox rows.
 */
import type Database from 'better-sqlite3';
import { StoreError } from '@xmppbus/core';
import type { Checkpoint, CheckpointStore } from '@xmppbus/pubsub';
import { openDatabase, sqliteOptions, storeError, type SqliteOptions } from './database.js';

/** Options of the SQLite checkpoint store. */
export type SqliteCheckpointStoreOptions = SqliteOptions;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS pubsub_checkpoints (
  key TEXT PRIMARY KEY,
  last_id TEXT,
  recent TEXT NOT NULL
) WITHOUT ROWID;
`;

interface Row {
  last_id: string | null;
  recent: string;
}

export class SqliteCheckpointStore implements CheckpointStore {
  /** The database file. */
  readonly path: string;
  readonly #options: Required<SqliteOptions>;
  #db: Database.Database | undefined;
  #load: Database.Statement | undefined;
  #save: Database.Statement | undefined;
  #closed = false;

  /** `options`: the database file, or `SqliteOptions`. The file opens on first use (or `open()`). */
  constructor(options: string | SqliteCheckpointStoreOptions) {
    this.#options = sqliteOptions(options);
    this.path = this.#options.path;
  }

  /** Opens the file now instead of on the first `load`/`save` (to fail early). Idempotent. */
  open(): Promise<void> {
    try {
      this.#closed = false;
      this.#connect();
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err instanceof StoreError ? err : storeError(`cannot open ${this.path}`, err));
    }
  }

  #connect(): Database.Database {
    if (this.#db) return this.#db;
    if (this.#closed) throw new StoreError('checkpoint store is closed');
    const db = openDatabase(this.#options, SCHEMA);
    try {
      this.#load = db.prepare('SELECT last_id, recent FROM pubsub_checkpoints WHERE key = ?');
      this.#save = db.prepare(
        `INSERT INTO pubsub_checkpoints (key, last_id, recent) VALUES (?, ?, ?)
         ON CONFLICT(key) DO UPDATE SET last_id = excluded.last_id, recent = excluded.recent`,
      );
    } catch (err) {
      db.close();
      throw storeError(`cannot prepare ${this.path}`, err);
    }
    this.#db = db;
    return db;
  }

  load(key: string): Promise<Checkpoint | undefined> {
    try {
      this.#connect();
      const row = this.#load!.get(key) as Row | undefined;
      if (!row) return Promise.resolve(undefined);
      return Promise.resolve({ lastId: row.last_id ?? undefined, recent: parseRecent(row.recent, key) });
    } catch (err) {
      return Promise.reject(err instanceof StoreError ? err : storeError(`cannot read checkpoint of ${key}`, err));
    }
  }

  save(key: string, checkpoint: Checkpoint): Promise<void> {
    try {
      this.#connect();
      this.#save!.run(key, checkpoint.lastId ?? null, JSON.stringify(checkpoint.recent));
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err instanceof StoreError ? err : storeError(`cannot write checkpoint of ${key}`, err));
    }
  }

  /** Closes the file; `load`/`save` then reject until `open()` is called again. Idempotent. */
  close(): Promise<void> {
    this.#closed = true;
    this.#db?.close();
    this.#db = undefined;
    this.#load = undefined;
    this.#save = undefined;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function parseRecent(text: string, key: string): string[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new StoreError(`corrupt checkpoint of ${key}`, { cause: err });
  }
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** Creates the SQLite checkpoint store: `pubsub.consume(node, C, fn, { durable, store: sqliteCheckpointStore('./state.db') })`. */
export function sqliteCheckpointStore(options: string | SqliteCheckpointStoreOptions): SqliteCheckpointStore {
  return new SqliteCheckpointStore(options);
}
