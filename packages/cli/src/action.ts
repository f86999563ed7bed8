/** How command bodies plug into the program (kept apart so that commands need not import it). */
import type { Context } from './context.js';
import type { ExitCode } from './errors.js';

/** A command's body: gets the context and its arguments; may return a non-zero exit code. */
export type Action<A extends unknown[]> = (ctx: Context, ...args: A) => Promise<ExitCode | void>;

/** Wraps a command body: builds its context, runs it, closes what it opened. */
export type Wrap = <A extends unknown[]>(body: Action<A>) => (...args: unknown[]) => Promise<void>;
