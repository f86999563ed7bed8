/**
 * Schema reflection (`urn:xmppbus:schema:1`, docs/protocol.md §6): what contracts an endpoint
 * serves, publishes, consumes or handles, with their JSON Schemas, so a peer without our
 * TypeScript contracts (the CLI, a dashboard, a Python service) can call and validate.
 *
 * One `SchemaRegistry` per session: rpc, pubsub and messaging add the contracts they register;
 * the registry answers the IQ. It installs its IQ handler and disco entries with the first
 * contract and removes them with the last. Everything here runs at registration or on a
 * reflection request, never on the call path.
 */
import type { AccessPolicy } from './access.js';
import type { DiscoRegistry } from './disco.js';
import type { IqRouter } from './iq.js';
import { errorReply, resultReply } from './iq.js';
import { StanzaError, type StanzaErrorCondition, type StanzaErrorType } from './stanza-error.js';
import type { Transport } from './transport.js';
import { findChild, xml, type Element } from './xml.js';

/** The schema reflection namespace (request element `<schemas/>`, disco feature and node). */
export const NS_SCHEMA = 'urn:xmppbus:schema:1';
/** XEP-0059 result set management: paging of the answer. */
export const NS_RSM = 'http://jabber.org/protocol/rsm';

/** A JSON Schema as plain data (TypeBox schemas qualify; their symbol keys never travel). */
export interface JsonSchema {
  readonly [keyword: string]: unknown;
}

/** A declared application error of a method. */
export interface ErrorDescriptor {
  readonly condition: StanzaErrorCondition;
  /** The condition's default type (declared errors always travel with it). */
  readonly type: StanzaErrorType;
  /** Schema of the application element's data, when the error carries data. */
  readonly schema?: JsonSchema;
}

/** An RPC method: IQ `get` (readOnly) or `set` with `<name xmlns=ns>`, answered by `<responseName xmlns=ns>`. */
export interface MethodDescriptor {
  readonly kind: 'method';
  readonly ns: string;
  readonly name: string;
  readonly responseName: string;
  readonly readOnly: boolean;
  readonly idempotent: boolean;
  readonly request: JsonSchema;
  readonly response: JsonSchema;
  readonly errors: Readonly<Record<string, ErrorDescriptor>>;
}

/** A pub/sub event contract this endpoint publishes or consumes (on `node` of `service`, when known). */
export interface EventDescriptor {
  readonly kind: 'event';
  readonly ns: string;
  readonly name: string;
  readonly schema: JsonSchema;
  readonly role: 'publish' | 'consume';
  readonly node?: string;
  readonly service?: string;
  /**
   * The wrapper namespace when the publisher sends several events per item
   * (`urn:xmppbus:events:batch:1`, docs/protocol.md §4); absent: one event per item.
   */
  readonly batch?: string;
}

/** A message contract this endpoint handles (any QoS level, docs/protocol.md §5). */
export interface MessageDescriptor {
  readonly kind: 'message';
  readonly ns: string;
  readonly name: string;
  readonly schema: JsonSchema;
}

export type ContractDescriptor = MethodDescriptor | EventDescriptor | MessageDescriptor;

/** Items per page when the requester asks for none (and the most it may ask for). */
const PAGE_ITEMS = 100;
/**
 * Most schema text per page: well under the smallest stanza cap a requester may have
 * (Prosody c2s, 256 KiB), so an answer always gets through. One oversized item still goes alone.
 */
const PAGE_BYTES = 64 * 1024;

interface Entry {
  readonly key: string;
  readonly descriptor: ContractDescriptor;
  refs: number;
  /** Size of its answer element, measured on the first request (schemas are immutable once registered). */
  bytes: number;
}

export interface SchemaRegistryDeps {
  router: IqRouter;
  disco: DiscoRegistry;
  access: AccessPolicy;
  transport: Transport;
}

export class SchemaRegistry {
  readonly #deps: SchemaRegistryDeps;
  readonly #entries = new Map<string, Entry>();
  #sorted: Entry[] | undefined;
  #uninstall: (() => void) | undefined;

  constructor(deps: SchemaRegistryDeps) {
    this.#deps = deps;
  }

  /**
   * Adds a contract to the answer (reference counted: two units may add the same one). The
   * first contract installs the IQ handler and the disco feature and item. Returns the remover.
   */
  add(descriptor: ContractDescriptor): () => void {
    const key = keyOf(descriptor);
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = { key, descriptor, refs: 0, bytes: 0 };
      this.#entries.set(key, entry);
      this.#sorted = undefined;
      if (this.#uninstall === undefined) this.#install();
    }
    entry.refs++;
    const e = entry;
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      if (--e.refs > 0 || this.#entries.get(key) !== e) return;
      this.#entries.delete(key);
      this.#sorted = undefined;
      if (this.#entries.size === 0) {
        this.#uninstall?.();
        this.#uninstall = undefined;
      }
    };
  }

  /** Every contract registered, in answer order. */
  list(): ContractDescriptor[] {
    return this.#ordered().map((e) => e.descriptor);
  }

  #ordered(): Entry[] {
    this.#sorted ??= [...this.#entries.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return this.#sorted;
  }

  /** The entries `from` may see: the contracts the session's access policy lets it use. */
  #visibleTo(from: string | undefined): Entry[] {
    const { access, transport } = this.#deps;
    const self = transport.address;
    return this.#ordered().filter((e) => access.allows(from, self, e.descriptor.ns, e.descriptor.name));
  }

  #install(): void {
    const { router, disco } = this.#deps;
    // The handler decides per contract who may see what (the requester's own access).
    const offs = [
      router.delegateAccess(NS_SCHEMA),
      router.handle(NS_SCHEMA, 'schemas', (iq, payload) => this.#answer(iq, payload)),
      disco.addFeature(NS_SCHEMA),
      // Linked only for requesters who would see something (others would get `forbidden`).
      disco.addItem({ node: NS_SCHEMA, name: 'schemas', shownTo: (from) => this.#visibleTo(from).length > 0 }),
      disco.addNodeInfo(NS_SCHEMA, {
        identities: [{ category: 'automation', type: 'schema', name: 'schemas' }],
        features: [NS_SCHEMA],
      }),
    ];
    this.#uninstall = () => {
      for (const off of offs) off();
    };
  }

  #answer(iq: Element, query: Element): void {
    const { access, transport } = this.#deps;
    const reply = (r: Element | StanzaError): void => {
      const stanza = r instanceof StanzaError ? errorReply(iq, r) : resultReply(iq, r);
      transport.send(stanza).catch(() => undefined); // a lost answer is the requester's timeout
    };
    if (iq.attrs['type'] !== 'get') {
      reply(new StanzaError({ condition: 'bad-request', text: 'schema reflection is an IQ get' }));
      return;
    }
    const from = iq.attrs['from'];
    const self = transport.address;
    const visible = this.#visibleTo(from);
    if (visible.length === 0) {
      access.denied++;
      const text = `${from ?? 'this sender'} may not use any contract of ${self}`;
      reply(new StanzaError({ condition: 'forbidden', type: 'auth', text }));
      return;
    }
    const filtered = visible.filter((e) => matchesFilter(e.descriptor, query));
    const page = readPage(query);
    if (page instanceof StanzaError) return reply(page);
    let start = 0;
    if (page.after !== undefined) {
      start = filtered.findIndex((e) => e.key > page.after!);
      if (start < 0) start = filtered.length;
    }
    const answer = xml('schemas', { xmlns: NS_SCHEMA });
    let bytes = 0;
    let end = start;
    while (end < filtered.length && end - start < page.max) {
      const entry = filtered[end]!;
      // Built afresh per answer: an in-memory peer receives the very element objects.
      const el = descriptorElement(entry.descriptor);
      entry.bytes ||= entryBytes(el);
      if (end > start && bytes + entry.bytes > PAGE_BYTES) break;
      bytes += entry.bytes;
      answer.cnode(el);
      end++;
    }
    const set = xml('set', { xmlns: NS_RSM });
    if (end > start) {
      set.cnode(xml('first', { index: start }, filtered[start]!.key));
      set.cnode(xml('last', null, filtered[end - 1]!.key));
    }
    set.cnode(xml('count', null, String(filtered.length)));
    answer.cnode(set);
    reply(answer);
  }
}

function keyOf(d: ContractDescriptor): string {
  const base = `${d.kind} {${d.ns}}${d.name}`;
  return d.kind === 'event' ? `${base} ${d.role} ${d.service ?? ''} ${d.node ?? ''} ${d.batch ?? ''}` : base;
}

function matchesFilter(d: ContractDescriptor, query: Element): boolean {
  const { kind, ns, name } = query.attrs;
  return (
    (kind === undefined || kind === d.kind) &&
    (ns === undefined || ns === d.ns) &&
    (name === undefined || name === d.name)
  );
}

function readPage(query: Element): { max: number; after: string | undefined } | StanzaError {
  const set = findChild(query, 'set', NS_RSM);
  if (set === undefined) return { max: PAGE_ITEMS, after: undefined };
  const maxEl = findChild(set, 'max');
  let max = PAGE_ITEMS;
  if (maxEl !== undefined) {
    const n = Number(maxEl.getText());
    if (!Number.isInteger(n) || n < 0)
      return new StanzaError({ condition: 'bad-request', text: 'RSM <max/> must be an integer >= 0' });
    max = Math.min(n, PAGE_ITEMS);
  }
  const afterEl = findChild(set, 'after');
  return { max, after: afterEl === undefined ? undefined : afterEl.getText() };
}

/** Schema text: compact JSON (TypeBox symbol keys drop out; no raw CR can reach the wire). */
function schemaText(schema: JsonSchema): string {
  return JSON.stringify(schema);
}

function descriptorElement(d: ContractDescriptor): Element {
  switch (d.kind) {
    case 'method': {
      const el = xml(
        'method',
        {
          ns: d.ns,
          name: d.name,
          response: d.responseName,
          'read-only': String(d.readOnly),
          idempotent: String(d.idempotent),
        },
        xml('request', null, schemaText(d.request)),
        xml('response', null, schemaText(d.response)),
      );
      for (const [name, e] of Object.entries(d.errors))
        el.cnode(
          xml(
            'error',
            { name, condition: e.condition, type: e.type },
            e.schema === undefined ? null : schemaText(e.schema),
          ),
        );
      return el;
    }
    case 'event':
      return xml(
        'event',
        { ns: d.ns, name: d.name, role: d.role, node: d.node, service: d.service, batch: d.batch },
        xml('schema', null, schemaText(d.schema)),
      );
    case 'message':
      return xml('message', { ns: d.ns, name: d.name }, xml('schema', null, schemaText(d.schema)));
  }
}

function entryBytes(el: Element): number {
  let n = 0;
  for (const c of el.children) if (typeof c !== 'string') n += c.getText().length + 64;
  return n + 128;
}
