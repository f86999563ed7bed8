/** An in-memory `Io` for unit tests: captured stdout/stderr, a given stdin, env and cwd. */
import { PassThrough, Readable, Writable } from 'node:stream';
import type { Io } from '../output.js';

export interface TestIo extends Io {
  readonly out: () => string;
  readonly err: () => string;
}

export function testIo(
  options: { env?: Record<string, string>; cwd?: string; stdin?: string; tty?: boolean } = {},
): TestIo {
  let out = '';
  let err = '';
  const sink = (append: (s: string) => void): Writable & { isTTY?: boolean } => {
    const w = new Writable({
      write(chunk: Buffer | string, _enc, cb) {
        append(chunk.toString());
        cb();
      },
    }) as Writable & { isTTY?: boolean };
    if (options.tty) w.isTTY = true;
    return w;
  };
  const stdin: Readable & { isTTY?: boolean } =
    options.stdin === undefined ? Object.assign(new PassThrough(), { isTTY: true }) : Readable.from([options.stdin]);
  return {
    stdout: sink((s) => (out += s)),
    stderr: sink((s) => (err += s)),
    stdin,
    env: options.env ?? {},
    cwd: options.cwd ?? process.cwd(),
    out: () => out,
    err: () => err,
  };
}
