// The soak benchmark's receiving service, run as its own process (forked by benchmarks/soak.ts)
// so that its RSS is measured alone. Config: JSON in argv[2]. IPC: sends `ready`, one `legit`
// per legitimate message handled, `stats` on request; `stop` closes everything and exits.
import { join } from 'node:path';
import { startSoakService, type SoakService } from './soak-parts.js';

interface Config {
  componentService: string;
  secret: string;
  dir: string;
}
type Command = { type: 'stats' } | { type: 'stop' };

const send = (m: unknown): void => {
  process.send?.(m);
};
const config = JSON.parse(process.argv[2] ?? '{}') as Config;
let svc: SoakService | undefined;
process.on('message', (m: Command) => {
  if (m.type === 'stats' && svc) send({ type: 'stats', stats: svc.stats() });
  if (m.type === 'stop') {
    const stats = svc?.stats();
    void (svc?.close() ?? Promise.resolve()).finally(() => {
      send({ type: 'stopped', stats });
      process.disconnect?.();
    });
  }
});
svc = await startSoakService({
  componentService: config.componentService,
  secret: config.secret,
  dbFile: join(config.dir, 'service.db'),
  onLegit: (note) => send({ type: 'legit', ...note, at: performance.timeOrigin + performance.now() }),
});
send({ type: 'ready', pid: process.pid });
