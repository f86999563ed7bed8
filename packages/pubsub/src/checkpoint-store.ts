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

/**
 * Contract for implementers (checked by `checkpointStoreContract` in `@xmppbus/testing`; the
 * SQLite one is in `@xmppbus/store-sqlite`):
 * - `save` replaces the key's checkpoint atomically (a crash leaves the old one or the new one,
 *   never a mix) and, for a durable store, has made it durable when its promise resolves;
 * - overlapping calls take effect in call order: the last `save` called wins, and a `load`
 *   sees every `save` called before it;
 * - keys are opaque strings (any characters); values are copied in and out;
 * - failures are `StoreError` (`ERR_STORE`).
 */
export interface CheckpointStore {
  /** The checkpoint saved under `key`, or undefined if none was. */
  load(key: string): Promise<Checkpoint | undefined>;
  /** Replaces the checkpoint of `key`. */
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
  /** Per key, the last write called: writes of one key run one at a time, in call order (one temp file each). */
  readonly #tails = new Map<string, Promise<void>>();

  constructor(dir: string, options: FileCheckpointStoreOptions = {}) {
    this.dir = dir;
    this.#fsync = options.fsync ?? true;
  }

  #file(key: string): string {
    return join(this.dir, `${createHash('sha256').update(key).digest('hex').slice(0, 32)}.json`);
  }

  async load(key: string): Promise<Checkpoint | undefined> {
    await this.#tails.get(key)?.catch(() => undefined);
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

  save(key: string, checkpoint: Checkpoint): Promise<void> {
    // Copy now: the caller may change `recent` while an earlier write of this key still runs.
    const value = { key, lastId: checkpoint.lastId, recent: [...checkpoint.recent] };
    const write = (this.#tails.get(key) ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => this.#write(key, JSON.stringify(value)));
    this.#tails.set(key, write);
    const forget = (): void => {
      if (this.#tails.get(key) === write) this.#tails.delete(key);
    };
    void write.then(forget, forget);
    return write;
  }

  async #write(key: string, text: string): Promise<void> {
    this.#ready ??= mkdir(this.dir, { recursive: true });
    try {
      await this.#ready;
      const file = this.#file(key);
      const tmp = `${file}.${process.pid}.tmp`;
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(text);
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
