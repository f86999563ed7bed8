/**
 * Config snippets for the user's OWN production Prosody or ejabberd: the component entries with
 * their secrets, the pub/sub service and who may create and publish, c2s accounts for agents,
 * stanza size and rate limits, TLS. Printed by `xmppbus server config --prosody|--ejabberd` and
 * quoted in docs/servers.md (a test keeps the two equal).
 */
import { ConfigError } from '@xmppbus/core';

import { isDomainName, randomSecret } from './options.js';
import { lua, yamlString } from './quote.js';
import type { ComponentSpec, ServerKind } from './types.js';

export interface SnippetOptions {
  /** The XMPP domain, e.g. `example.org`. */
  domain: string;
  /** The services' components; a missing secret is generated (random, printed once). */
  components?: (string | ComponentSpec)[];
  /** Default `pubsub.<domain>`. */
  pubsubService?: string;
  /** JIDs that may create pub/sub nodes and publish to all of them (default: every component). */
  pubsubAdmins?: string[];
  /** Default 5347. */
  componentPort?: number;
  /** Default 5222. */
  c2sPort?: number;
  /** Largest c2s stanza, bytes (default 256 KiB). */
  c2sStanzaSize?: number;
  /** Largest component stanza, bytes (default 512 KiB). */
  componentStanzaSize?: number;
  /** c2s read rate per connection, bytes/s (default 10 000: agents send small stanzas). */
  c2sRate?: number;
  /** Certificate and key (PEM files) for the domain; default: the package's usual paths. */
  tls?: { certificate: string; key: string };
}

interface Resolved {
  domain: string;
  components: Required<ComponentSpec>[];
  pubsub: string;
  admins: string[];
  componentPort: number;
  c2sPort: number;
  c2sSize: number;
  componentSize: number;
  rate: number;
  tls: { certificate: string; key: string } | undefined;
}

function resolve(o: SnippetOptions): Resolved {
  if (!o.domain) throw new ConfigError('serverConfigSnippet: domain is required');
  // Names also appear in comments and file paths of the snippet: only host names go in.
  const host = (what: string, name: string): string => {
    if (!isDomainName(name))
      throw new ConfigError(`serverConfigSnippet: ${what} ${JSON.stringify(name)} is not a domain name`);
    return name;
  };
  const components = (o.components ?? []).map((c) => {
    const spec = typeof c === 'string' ? { name: c } : c;
    return { name: host('component', spec.name), secret: spec.secret ?? randomSecret() };
  });
  return {
    domain: host('domain', o.domain),
    components,
    pubsub: host('pubsubService', o.pubsubService ?? `pubsub.${o.domain}`),
    admins: o.pubsubAdmins ?? components.map((c) => c.name),
    componentPort: o.componentPort ?? 5347,
    c2sPort: o.c2sPort ?? 5222,
    c2sSize: o.c2sStanzaSize ?? 256 * 1024,
    componentSize: o.componentStanzaSize ?? 512 * 1024,
    rate: o.c2sRate ?? 10_000,
    tls: o.tls,
  };
}

function prosody(r: Resolved): string {
  const cert = r.tls ?? {
    certificate: `/etc/prosody/certs/${r.domain}.crt`,
    key: `/etc/prosody/certs/${r.domain}.key`,
  };
  return [
    `-- xmppbus on ${r.domain}: merge into /etc/prosody/prosody.cfg.lua (Prosody 0.12).`,
    '-- Global section (before any VirtualHost):',
    `component_ports = { ${r.componentPort} }`,
    '-- Components (services) connect from this host; widen only behind a firewall: the secret is the only check.',
    'component_interfaces = { "127.0.0.1" }',
    `c2s_ports = { ${r.c2sPort} }`,
    `c2s_stanza_size_limit = ${r.c2sSize} -- largest stanza an agent (c2s account) may send, bytes`,
    `component_stanza_size_limit = ${r.componentSize} -- largest stanza a service may send, bytes`,
    '-- Per-connection c2s read rate (mod_limits; add "limits" to modules_enabled). Services are not limited.',
    `limits = { c2s = { rate = "${Math.ceil(r.rate / 1000)}kb/s"; burst = "2s" } }`,
    'c2s_require_encryption = true',
    '',
    `VirtualHost ${lua(r.domain)}`,
    `  ssl = { certificate = ${lua(cert.certificate)}; key = ${lua(cert.key)} }`,
    '  -- Agents log in with c2s accounts. Create them as an admin (in-band registration stays off):',
    `  --   prosodyctl register <agent> ${r.domain} <password>`,
    '  allow_registration = false',
    '',
    `Component ${lua(r.pubsub)} "pubsub"`,
    '  -- Admins of this host are owners of every node: they may create nodes and publish.',
    '  -- Anyone else needs a publisher affiliation, given by the node owner.',
    `  admins = { ${r.admins.map(lua).join(', ')} }`,
    '  pubsub_max_items = 1000',
    '',
    ...r.components.flatMap((c) => [`Component ${lua(c.name)}`, `  component_secret = ${lua(c.secret)}`]),
    '',
  ].join('\n');
}

function ejabberd(r: Resolved): string {
  const pem = r.tls?.certificate ?? `/etc/ejabberd/${r.domain}.pem`;
  const hosts = r.components.flatMap((c) => [
    `      ${yamlString(c.name)}:`,
    `        password: ${yamlString(c.secret)}`,
  ]);
  return [
    `# xmppbus on ${r.domain}: merge into /etc/ejabberd/ejabberd.yml (ejabberd 23.01).`,
    'hosts:',
    `  - ${yamlString(r.domain)}`,
    'certfiles:',
    `  - ${yamlString(pem)}${r.tls ? `\n  - ${yamlString(r.tls.key)}` : ''}`,
    '',
    'listen:',
    '  -',
    `    port: ${r.c2sPort}`,
    '    ip: "::"',
    '    module: ejabberd_c2s',
    `    max_stanza_size: ${r.c2sSize} # largest stanza an agent (c2s account) may send, bytes`,
    '    shaper: c2s_shaper',
    '    access: c2s',
    '    starttls_required: true',
    '  -',
    `    port: ${r.componentPort}`,
    '    # Components (services) connect from this host; widen only behind a firewall.',
    '    ip: "127.0.0.1"',
    '    module: ejabberd_service',
    `    max_stanza_size: ${r.componentSize} # largest stanza a service may send, bytes`,
    '    # Each connection routes only its own name (the default, true, mixes up components).',
    '    global_routes: false',
    ...(hosts.length > 0 ? ['    hosts:', ...hosts] : ['    hosts: {}']),
    '',
    'shaper:',
    `  c2s_rate: ${r.rate} # bytes/s per c2s connection`,
    'shaper_rules:',
    '  c2s_shaper: c2s_rate',
    '',
    'acl:',
    '  xmppbus_services:',
    '    server:',
    ...(r.admins.length > 0 ? r.admins.map((a) => `      - ${yamlString(a)}`) : ['      []']),
    'access_rules:',
    '  # Who may create pub/sub nodes (Debian\'s default "local" refuses components).',
    '  xmppbus_createnode:',
    '    allow: xmppbus_services',
    '',
    'modules:',
    '  mod_pubsub:',
    '    hosts:',
    `      - ${yamlString(r.pubsub)}`,
    '    access_createnode: xmppbus_createnode',
    '    plugins:',
    '      - flat # keep the ones you have, e.g. pep (which needs mod_caps)',
    '    max_items_node: 1000',
    '    # Only the node owner publishes by default: give every other publisher (another service,',
    '    # an agent) the "publisher" affiliation on the node, as its owner (XEP-0060 §8.9).',
    '  # Agents log in with c2s accounts; create them as an admin (in-band registration stays off):',
    `  #   ejabberdctl register <agent> ${r.domain} <password>`,
    '',
  ].join('\n');
}

/**
 * A config snippet for your own production server. Deterministic for given secrets; components
 * without one get a fresh random secret (so print it once and store it in your secret store).
 */
export function serverConfigSnippet(kind: ServerKind, options: SnippetOptions): string {
  const r = resolve(options);
  return kind === 'prosody' ? prosody(r) : ejabberd(r);
}
