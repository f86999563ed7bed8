/**
 * `xmppbus discover <jid>`: what an entity is (XEP-0030 disco#info identities and features),
 * what it lists (disco#items: a server's services, a service's instances) and, for an xmppbus
 * service, its methods, events and messages with their JSON Schemas (schema reflection).
 */
import type { Command } from 'commander';
import {
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  NS_SCHEMA,
  StanzaError,
  childElements,
  fetchSchemas,
  firstChildElement,
  localName,
  xml,
  type ContractDescriptor,
  type JsonSchema,
  type Session,
  type WaitOptions,
} from '@xmppbus/core';
import type { Context } from '../context.js';
import { contractLabel } from '../input.js';
import type { Wrap } from '../action.js';
import { schemaSummary } from '../schema-summary.js';

interface DiscoverFlags {
  schemas?: boolean;
}

export interface Discovery {
  jid: string;
  identities: { category: string; type: string; name?: string }[];
  features: string[];
  items: { jid: string; node?: string; name?: string }[];
  contracts: ContractDescriptor[];
  /** Why `contracts` is empty although the entity reflects, e.g. a `forbidden` answer. */
  contractsError?: string;
}

export function registerDiscover(program: Command, wrap: Wrap): void {
  program
    .command('discover')
    .description('list what an entity offers: identities, features, items, and methods/events/messages with schemas')
    .argument('<jid>', 'a service, or the server domain to list its services')
    .option('--schemas', 'print full JSON Schemas, not one-line summaries')
    .action(wrap(discover));
}

async function discover(ctx: Context, jid: string, flags: DiscoverFlags): Promise<void> {
  const bus = await ctx.connect();
  const found = await discoverEntity(bus.session, jid, { timeout: ctx.timeout, signal: ctx.signal });
  ctx.out.result(found, () => render(ctx, found, flags.schemas === true));
}

export async function discoverEntity(session: Session, jid: string, wait: WaitOptions): Promise<Discovery> {
  const query = (ns: string) =>
    session.caller.request(xml('iq', { type: 'get', to: jid }, xml('query', { xmlns: ns })), wait);
  // disco#info must work (it is how we know the entity exists); items and schemas are optional.
  const [info, items] = await Promise.all([query(NS_DISCO_INFO), query(NS_DISCO_ITEMS).catch(optional)]);
  const out: Discovery = { jid, identities: [], features: [], items: [], contracts: [] };
  for (const el of childElements(firstChildElement(info) ?? info)) {
    if (localName(el) === 'identity') {
      const { category, type, name } = el.attrs;
      out.identities.push({
        category: String(category ?? ''),
        type: String(type ?? ''),
        ...(name && { name: String(name) }),
      });
    } else if (localName(el) === 'feature' && el.attrs['var'] !== undefined) out.features.push(String(el.attrs['var']));
  }
  const itemsQuery = items === undefined ? undefined : firstChildElement(items);
  for (const el of itemsQuery ? childElements(itemsQuery) : []) {
    if (localName(el) !== 'item' || el.attrs['jid'] === undefined) continue;
    const { node, name } = el.attrs;
    out.items.push({
      jid: String(el.attrs['jid']),
      ...(node && { node: String(node) }),
      ...(name && { name: String(name) }),
    });
  }
  if (out.features.includes(NS_SCHEMA)) {
    try {
      out.contracts = await fetchSchemas(session, jid, wait);
    } catch (err) {
      if (!(err instanceof StanzaError)) throw err;
      out.contractsError = `${err.condition}${err.text ? `: ${err.text}` : ''}`;
    }
  }
  return out;
}

function optional(err: unknown): undefined {
  if (err instanceof StanzaError) return undefined;
  throw err;
}

function render(ctx: Context, d: Discovery, full: boolean): string {
  const { c } = ctx.out;
  const lines: string[] = [c.bold(d.jid)];
  for (const i of d.identities) lines.push(`  identity  ${i.category}/${i.type}${i.name ? ` "${i.name}"` : ''}`);
  if (d.features.length > 0) lines.push(`  features  ${d.features.join(', ')}`);
  if (d.items.length > 0) {
    lines.push(c.bold('items'));
    for (const i of d.items)
      lines.push(`  ${i.jid}${i.node ? `  node=${i.node}` : ''}${i.name ? `  ${c.dim(i.name)}` : ''}`);
  }
  const schema = (s: JsonSchema): string =>
    full ? `\n${indent(ctx.out.prettyJson(s), 6)}` : ` ${c.dim(schemaSummary(s))}`;
  const methods = d.contracts.filter((x) => x.kind === 'method');
  if (methods.length > 0) {
    lines.push(c.bold('methods'));
    for (const m of methods) {
      lines.push(`  ${c.green(contractLabel(m))}  ${m.readOnly ? 'get' : 'set'}${m.idempotent ? ', idempotent' : ''}`);
      lines.push(`    request${schema(m.request)}`);
      lines.push(`    response <${m.responseName}>${schema(m.response)}`);
      for (const [name, e] of Object.entries(m.errors))
        lines.push(`    error ${name} (${e.type}/${e.condition})${e.schema ? schema(e.schema) : ''}`);
    }
  }
  const events = d.contracts.filter((x) => x.kind === 'event');
  if (events.length > 0) {
    lines.push(c.bold('events'));
    for (const e of events) {
      const where = e.node ? ` on ${e.service ? `${e.service}/` : ''}${e.node}` : '';
      lines.push(`  ${c.green(contractLabel(e))}  ${e.role}s${where}${schema(e.schema)}`);
    }
  }
  const messages = d.contracts.filter((x) => x.kind === 'message');
  if (messages.length > 0) {
    lines.push(c.bold('messages'));
    for (const m of messages) lines.push(`  ${c.green(contractLabel(m))}${schema(m.schema)}`);
  }
  if (d.contractsError) lines.push(c.yellow(`contracts not shown: ${d.contractsError}`));
  return lines.join('\n');
}

function indent(text: string, n: number): string {
  const pad = ' '.repeat(n);
  return text
    .split('\n')
    .map((l) => pad + l)
    .join('\n');
}
