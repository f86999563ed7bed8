#!/usr/bin/env node
/**
 * The `xmppbus` executable. Ctrl-C aborts the running command (long-running ones like `tail`
 * and `listen` stop cleanly and exit 0); a second Ctrl-C exits at once.
 */
import { AbortError } from '@xmppbus/core';
import { EXIT } from './errors.js';
import { run } from './program.js';

const controller = new AbortController();
let interrupts = 0;
process.on('SIGINT', () => {
  if (++interrupts > 1) process.exit(EXIT.interrupted);
  controller.abort(new AbortError('interrupted'));
});
process.on('SIGTERM', () => controller.abort(new AbortError('terminated')));
// `xmppbus tail | head`: the reader went away. Stop quietly, as other Unix tools do.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    controller.abort(new AbortError('output closed'));
    process.exit(process.exitCode ?? 0);
  });

const code = await run(
  process.argv.slice(2),
  {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
  },
  controller.signal,
);
process.exitCode = code;
// Everything is closed by now; should a stray handle keep the loop alive, leave anyway.
setTimeout(() => process.exit(code), 2000).unref();
