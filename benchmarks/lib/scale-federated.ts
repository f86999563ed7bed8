// The `federated` topology of `npm run bench -- scale` (loaded by benchmarks/scale.ts when present):
// two independent ejabberd servers, a.test and b.test, linked by s2s with dialback; the caller is
// a component on a.test, the callee a component on b.test, so every stanza crosses both servers
// and the s2s link (no relay in between: `link: 'direct'`). ejabberd on both sides, as the
// `single` baseline, so the ratio is the cost of the extra server hop and nothing else.
import { startFederation } from '@xmppbus/testing';
import type { Topology } from './scale-topology.js';

export function federatedTopology(): Topology {
  return {
    name: 'federated',
    description:
      'two ejabberd servers federated over s2s (a.test → b.test, dialback, plaintext); caller on a, callee on b',
    ratioKey: 'federated_vs_single',
    async start() {
      // scale.ts connects `<label>` and `<label>-rpc` on each side.
      const fed = await startFederation({
        a: 'ejabberd',
        b: 'ejabberd',
        link: 'direct',
        components: ['svc-a', 'svc-a-rpc', 'svc-b', 'svc-b-rpc'],
      });
      return {
        caller: { service: fed.a.componentService(), domain: 'svc-a.a.test', password: fed.a.componentSecret },
        callee: {
          service: fed.b.componentService(),
          domain: 'svc-b.b.test',
          password: fed.b.componentSecret,
          // The secure default refuses a foreign organisation's services: allow a.test's.
          access: [{ from: '*.a.test' }],
        },
        servers: { a: fed.a.pid, b: fed.b.pid },
        stop: () => fed.stop(),
      };
    },
  };
}
