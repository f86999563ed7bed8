/**
 * Where durable consumers remember their position: the id of the last item processed plus a
 * bounded window of recently processed ids (dedupe at the live/catch-up seam, and on servers
 * that keep a replaced item at its first position, like ejabberd). Pluggable: memory (default),
 * a crash-safe JSON file store, or anything implementing `CheckpointStore`.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreError } from '@xmppbus/core';

export interface Checkpoint {
  /** Id of the last item processed in order; undefined when none yet. */
  lastId: string | undefined;
  /** Recently processed ids, oldest first (bounded by the consumer's `dedupeWindow`). */
  recent: string[];
}

export interface CheckpointStore {
  load(key: string): Promise<Checkpoint | undefined>;
  save(key: string, checkpoint: Checkpoint): Promise<void>;
}

/** Keeps checkpoints in this process only (survives consumer restarts, not process restarts). */
export class MemoryCheckpointStore implements CheckpointStore {
  readonly #map = new Map<string, Checkpoint>();
  load(key: string): Promise<Checkpoint | undefined> {
    const c = this.#map.get(key);
    return Promise.resolve(c ? { lastId: c.lastId, recent: [...c.recent] } : undefined);
  }
  save(key: string, checkpoint: Checkpoint): Promise<void> {
    this.#map.set(key, { lastId: checkpoint.lastId, recent: [...checkpoint.recent] });
    return Promise.resolve();
  }
}

export interface FileCheckpointStoreOptions {
  /** fsync before the rename (default true): the checkpoint survives a power loss, not only a crash. */
  fsync?: boolean;
}

/**
 * One JSON file per consumer in `dir`, replaced atomically (write temp file, fsync, rename), so a
 * crash at any moment leaves either the old or the new checkpoint, never a torn one.
 */
export class FileCheckpointStore implements CheckpointStore {
  readonly dir: string;
  readonly #fsync: boolean;
  #ready: Promise<unknown> | undefined;

  constructor(dir: string, options: FileCheckpointStoreOptions = {}) {
    this.dir = dir;
    this.#fsync = options.fsync ?? true;
  }

  #file(key: string): string {
    return join(this.dir, `${createHash('sha256').update(key).digest('hex').slice(0, 32)}.json`);
  }

  async load(key: string): Promise<Checkpoint | undefined> {
    let text: string;
    try {
      text = await readFile(this.#file(key), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StoreError(`cannot read checkpoint of ${key}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const v = JSON.parse(text) as { key?: unknown; lastId?: unknown; recent?: unknown };
      const recent = Array.isArray(v.recent) ? v.recent.filter((x): x is string => typeof x === 'string') : [];
      return { lastId: typeof v.lastId === 'string' ? v.lastId : undefined, recent };
    } catch (err) {
      throw new StoreError(`corrupt checkpoint file for ${key}`, { cause: err });
    }
  }

  async save(key: string, checkpoint: Checkpoint): Promise<void> {
    this.#ready ??= mkdir(this.dir, { recursive: true });
    try {
      await this.#ready;
      const file = this.#file(key);
      const tmp = `${file}.${process.pid}.tmp`;
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(JSON.stringify({ key, lastId: checkpoint.lastId, recent: checkpoint.recent }));
        if (this.#fsync) await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
    } catch (err) {
      this.#ready = undefined;
      throw new StoreError(`cannot write checkpoint of ${key}: ${(err as Error).message}`, { cause: err });
    }
  }
}
