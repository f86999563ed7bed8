/**
 * The production snippets of docs/servers.md (`serverConfigSnippet`) on real servers: each is
 * merged into a local server's generated config the way the doc says to merge it into yours, and
 * what the doc promises holds — each component connects with its own secret only; pub/sub admins
 * create nodes, other services may not; a second service publishes only once the node's owner has
 * made it a publisher.
 */
import { join } from 'node:path';

import { AuthError, parseXml, Session } from '@xmppbus/core';
import type { Element } from '@xmppbus/core';
import { randomSecret, SERVER_KINDS, serverConfigSnippet, startServer } from '@xmppbus/server';
import type { ServerKind, XmppServer } from '@xmppbus/server';
import { componentTransport } from '@xmppbus/transport-component';
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

const DOMAIN = 'example.org';
const ORDERS = `orders.${DOMAIN}`;
const BILLING = `billing.${DOMAIN}`;
const PUBSUB = `pubsub.${DOMAIN}`;
const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Yaml = Record<string, unknown>;

/** The snippet for this server, with the readiness probe the local server needs declared too. */
function snippet(kind: ServerKind, server: XmppServer, secrets: Record<string, string>): string {
  const probe = `harness-probe.${DOMAIN}`;
  return serverConfigSnippet(kind, {
    domain: DOMAIN,
    components: [
      { name: ORDERS, secret: secrets[ORDERS]! },
      { name: BILLING, secret: secrets[BILLING]! },
      { name: probe, secret: server.componentSecret },
    ],
    pubsubAdmins: [ORDERS],
    c2sPort: server.c2sPort,
    componentPort: server.componentPort,
    tls:
      kind === 'prosody'
        ? { certificate: join(server.dir, 'server.crt'), key: join(server.dir, 'server.key') }
        : { certificate: join(server.dir, 'server.pem'), key: join(server.dir, 'server.pem') },
  });
}

/** Prosody: the generated global section, then the snippet (its options override), as in the doc. */
function mergeProsody(generated: string, server: XmppServer, secrets: Record<string, string>): string {
  const global = generated.slice(0, generated.indexOf('\nVirtualHost '));
  return `${global}\n\n${snippet('prosody', server, secrets)}`;
}

/** ejabberd: the snippet's entries added to the generated maps and lists, as the doc says. */
function mergeEjabberd(generated: string, server: XmppServer, secrets: Record<string, string>): string {
  const base = parseYaml(generated) as Yaml;
  const add = parseYaml(snippet('ejabberd', server, secrets)) as Yaml;
  const listen = (add['listen'] as Yaml[]).map((l) => ({ ...l, ip: '127.0.0.1' })); // loopback only here
  const map = (key: string): Yaml => ({ ...(base[key] as Yaml), ...(add[key] as Yaml) });
  return stringifyYaml({
    ...base,
    hosts: add['hosts'],
    certfiles: add['certfiles'],
    listen,
    shaper: map('shaper'),
    shaper_rules: map('shaper_rules'),
    acl: map('acl'),
    access_rules: map('access_rules'),
    modules: map('modules'),
  });
}

async function connect(server: XmppServer, name: string, secret: string): Promise<Session> {
  const session = new Session({
    transport: await componentTransport({ service: server.componentService(), domain: name, password: secret }),
  });
  cleanups.push(() => session.close());
  await session.start();
  return session;
}

function pubsub(session: Session, from: string, body: string, ns = NS_PUBSUB): Promise<Element> {
  const iq = parseXml(`<iq type='set' to='${PUBSUB}' from='${from}'><pubsub xmlns='${ns}'>${body}</pubsub></iq>`);
  return session.caller.request(iq, { timeout: 10_000 });
}

const publish = (node: string, id: string): string =>
  `<publish node='${node}'><item id='${id}'><e xmlns='urn:example:t'/></item></publish>`;

for (const kind of SERVER_KINDS) {
  describe(`docs/servers.md snippets [${kind}]`, () => {
    it('components with their own secrets; pub/sub admins create nodes; publishers need an affiliation', async () => {
      const secrets = { [ORDERS]: randomSecret(), [BILLING]: randomSecret() };
      const server = await startServer({
        kind,
        domain: DOMAIN,
        tls: true,
        limits: { c2sRate: 10_000 }, // loads mod_limits on Prosody, as the doc asks
        transformConfig: (generated, srv) =>
          kind === 'prosody' ? mergeProsody(generated, srv, secrets) : mergeEjabberd(generated, srv, secrets),
      });
      cleanups.push(() => server.stop());

      await expect(
        componentTransport({
          service: server.componentService(),
          domain: ORDERS,
          password: secrets[BILLING]!,
          reconnect: false,
        }),
      ).rejects.toBeInstanceOf(AuthError);
      const orders = await connect(server, ORDERS, secrets[ORDERS]!);
      const billing = await connect(server, BILLING, secrets[BILLING]!);

      await pubsub(orders, ORDERS, `<create node='orders-events'/>`);
      await pubsub(orders, ORDERS, publish('orders-events', 'o1'));
      await expect(pubsub(billing, BILLING, `<create node='billing-events'/>`)).rejects.toMatchObject({
        condition: 'forbidden',
      });
      await expect(pubsub(billing, BILLING, publish('orders-events', 'b1'))).rejects.toMatchObject({
        condition: 'forbidden',
      });
      await pubsub(
        orders,
        ORDERS,
        `<affiliations node='orders-events'><affiliation jid='${BILLING}' affiliation='publisher'/></affiliations>`,
        `${NS_PUBSUB}#owner`,
      );
      await pubsub(billing, BILLING, publish('orders-events', 'b2'));
    });
  });
}
