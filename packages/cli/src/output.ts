/**
 * Everything the CLI prints goes through `Output`: results on stdout (pretty on a TTY, plain
 * text otherwise, one JSON value per line with `--json`), notes and errors on stderr. Colour
 * only when stdout is a TTY and `NO_COLOR` is unset, so piped output never carries escapes.
 */
import pc from 'picocolors';
import type { Readable, Writable } from 'node:stream';

type Colors = ReturnType<typeof pc.createColors>;

/** The process's streams and environment, injectable for tests. */
export interface Io {
  readonly stdout: Writable & { isTTY?: boolean; columns?: number };
  readonly stderr: Writable & { isTTY?: boolean };
  readonly stdin: Readable & { isTTY?: boolean };
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
}

export interface OutputOptions {
  json: boolean;
  /** `--no-color`. */
  color: boolean;
}

export class Output {
  readonly json: boolean;
  readonly c: Colors;
  /** Progress bars and spinners may draw (stderr is a TTY, not `--json`). */
  readonly interactive: boolean;
  readonly #io: Io;

  constructor(io: Io, options: OutputOptions) {
    this.#io = io;
    this.json = options.json;
    const env = io.env;
    const forced = env['FORCE_COLOR'] !== undefined && env['FORCE_COLOR'] !== '0';
    const colour =
      options.color && !options.json && env['NO_COLOR'] === undefined && (forced || io.stdout.isTTY === true);
    this.c = pc.createColors(colour);
    this.interactive = !options.json && io.stderr.isTTY === true && env['CI'] === undefined;
  }

  get stderr(): Io['stderr'] {
    return this.#io.stderr;
  }

  /** A result: `value` as one JSON line with `--json`, else the pretty text. */
  result(value: unknown, pretty: () => string): void {
    this.#io.stdout.write(this.json ? `${JSON.stringify(value)}\n` : ensureNewline(pretty()));
  }

  /** A line of human output on stdout (not with `--json`). */
  line(text: string): void {
    if (!this.json) this.#io.stdout.write(ensureNewline(text));
  }

  /** A note on stderr (progress, readiness), never mixed into results. */
  note(text: string): void {
    this.#io.stderr.write(ensureNewline(text));
  }

  /** Indented JSON, keys dimmed on a colour terminal. */
  prettyJson(value: unknown): string {
    const text = JSON.stringify(value, null, 2) ?? 'undefined';
    if (!this.c.isColorSupported) return text;
    return text.replace(/^(\s*)("(?:[^"\\]|\\.)*")(:)/gm, (_m, sp: string, key: string, colon: string) => {
      return `${sp}${this.c.cyan(key)}${colon}`;
    });
  }

  /** A plain table: a header row and aligned columns (numbers right-aligned). */
  table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
    const cells = rows.map((r) => r.map((v) => String(v)));
    const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
    const fmt = (r: readonly string[], raw: readonly (string | number)[] | undefined): string =>
      r
        .map((v, i) => (typeof raw?.[i] === 'number' ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd();
    const head = this.c.bold(fmt(header, rows[0]));
    return [head, ...cells.map((r, i) => fmt(r, rows[i]))].join('\n');
  }
}

function ensureNewline(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}
