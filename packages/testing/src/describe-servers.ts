import { afterAll, beforeAll, beforeEach, describe } from 'vitest';

import { waitForSettledRoutes } from './route-probe.js';
import { SERVER_KINDS, startServer } from './start.js';
import type { ServerKind, ServerOptions, XmppServer } from './types.js';

const LOG_TAIL = 20_000;

/**
 * `describe` once per server kind (`<title> [prosody]`, `<title> [ejabberd]`): one server per
 * kind is started in beforeAll and stopped in afterAll; when a test fails, the server's log tail
 * is written to stderr.
 */
export function describeServers(
  title: string,
  body: (server: () => XmppServer, kind: ServerKind) => void,
  options?: ServerOptions,
): void {
  for (const kind of SERVER_KINDS) {
    describe(`${title} [${kind}]`, () => {
      let srv: XmppServer | undefined;
      beforeAll(async () => {
        srv = await startServer(kind, options);
      }, 120_000);
      afterAll(async () => {
        await srv?.stop();
      }, 60_000);
      beforeEach((ctx) => {
        ctx.onTestFailed(() => {
          if (!srv) return;
          const log = srv.logs();
          const tail = log.length > LOG_TAIL ? `…${log.slice(-LOG_TAIL)}` : log;
          process.stderr.write(`\n----- ${kind} log (${srv.dir}) for "${ctx.task.name}" -----\n${tail}\n-----\n`);
        });
      });
      if (kind === 'ejabberd') {
        // ejabberd keeps routing to a just-closed component for a moment; let each test start
        // on settled routes (see waitForSettledRoutes). A beforeEach, so that it runs after every
        // afterEach of the previous test (which may close its components at file level).
        beforeEach(async () => {
          if (srv && srv.pid > 0) await waitForSettledRoutes(srv);
        }, 30_000);
      }
      body(() => {
        if (!srv) throw new Error(`${kind} server not started (used outside a test or hook?)`);
        return srv;
      }, kind);
    });
  }
}
