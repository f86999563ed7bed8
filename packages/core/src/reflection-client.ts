/**
 * The requesting side of schema reflection (docs/protocol.md §6): asks a peer which contracts it
 * serves, page by page, and reads the answer into descriptors. `@xmppbus/schema` turns a
 * descriptor into a runtime contract (`methodFromDescriptor`, `payloadFromDescriptor`).
 */
import type { WaitOptions } from './abort.js';
import { ProtocolError } from './errors.js';
import type { IqCaller } from './iq.js';
import {
  NS_RSM,
  NS_SCHEMA,
  type ContractDescriptor,
  type ErrorDescriptor,
  type JsonSchema,
  type MethodDescriptor,
} from './reflection.js';
import {
  STANZA_ERROR_CONDITIONS,
  defaultErrorType,
  type StanzaErrorCondition,
  type StanzaErrorType,
} from './stanza-error.js';
import { childElements, findChild, localName, xml, type Element } from './xml.js';

export interface FetchSchemasOptions extends WaitOptions {
  /** Only contracts of this kind. */
  kind?: ContractDescriptor['kind'];
  /** Only contracts of this namespace. */
  ns?: string;
  /** Only contracts with this element name (a method's request name). */
  name?: string;
  /** Items asked per page (the service caps it; default: the service's page size). */
  pageSize?: number;
  /** Most pages fetched before giving up with ProtocolError (default 100). */
  maxPages?: number;
}

/** What `fetchSchemas` needs of a session (a `Session` qualifies). */
export interface SchemaRequester {
  readonly caller: IqCaller;
}

/**
 * Fetches every contract `to` lets this session see (filtered by `options`), following pages
 * until the last. Rejects with the peer's StanzaError (`forbidden` when this sender may use
 * nothing there, `service-unavailable` when the peer does not reflect), TimeoutError, the abort
 * reason, or ProtocolError when the answer is malformed. `timeout` bounds each page request.
 */
export async function fetchSchemas(
  session: SchemaRequester,
  to: string,
  options: FetchSchemasOptions = {},
): Promise<ContractDescriptor[]> {
  const out: ContractDescriptor[] = [];
  const maxPages = options.maxPages ?? 100;
  let after: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const query = xml('schemas', { xmlns: NS_SCHEMA, kind: options.kind, ns: options.ns, name: options.name });
    if (options.pageSize !== undefined || after !== undefined) {
      const set = xml('set', { xmlns: NS_RSM });
      if (options.pageSize !== undefined) set.cnode(xml('max', null, String(options.pageSize)));
      if (after !== undefined) set.cnode(xml('after', null, after));
      query.cnode(set);
    }
    const reply = await session.caller.request(xml('iq', { type: 'get', to }, query), options);
    const answer = findChild(reply, 'schemas', NS_SCHEMA);
    if (answer === undefined) throw new ProtocolError(`${to} answered schema reflection without <schemas/>`);
    const { descriptors, last, count } = parseSchemas(answer);
    out.push(...descriptors);
    // Done when the service says so, or when a page brought nothing new (no cursor to follow).
    if (last === undefined || descriptors.length === 0 || (count !== undefined && out.length >= count)) return out;
    if (last === after) throw new ProtocolError(`${to} repeated the page after ${last}`);
    after = last;
  }
  throw new ProtocolError(`${to} sent more than ${maxPages} pages of schemas`);
}

/** Reads a `<schemas xmlns='urn:xmppbus:schema:1'/>` answer. Throws ProtocolError when malformed. */
export function parseSchemas(answer: Element): {
  descriptors: ContractDescriptor[];
  last: string | undefined;
  count: number | undefined;
} {
  const descriptors: ContractDescriptor[] = [];
  let last: string | undefined;
  let count: number | undefined;
  for (const el of childElements(answer)) {
    switch (localName(el)) {
      case 'method':
        descriptors.push(readMethod(el));
        break;
      case 'event': {
        const role = el.attrs['role'];
        if (role !== 'publish' && role !== 'consume')
          throw new ProtocolError(`event role '${String(role)}' is unknown`);
        const node = el.attrs['node'];
        const service = el.attrs['service'];
        const batch = el.attrs['batch'];
        descriptors.push({
          kind: 'event',
          ...nsName(el),
          role,
          schema: schemaOf(el, 'schema'),
          ...(typeof node === 'string' ? { node } : {}),
          ...(typeof service === 'string' ? { service } : {}),
          ...(typeof batch === 'string' && batch !== '' ? { batch } : {}),
        });
        break;
      }
      case 'message':
        descriptors.push({ kind: 'message', ...nsName(el), schema: schemaOf(el, 'schema') });
        break;
      case 'set': {
        const l = findChild(el, 'last');
        if (l !== undefined) last = l.getText();
        const c = findChild(el, 'count');
        if (c !== undefined && /^\d+$/.test(c.getText())) count = Number(c.getText());
        break;
      }
      default:
        break; // liberal in what we accept: later versions may add kinds
    }
  }
  return { descriptors, last, count };
}

function nsName(el: Element): { ns: string; name: string } {
  const { ns, name } = el.attrs;
  if (typeof ns !== 'string' || typeof name !== 'string' || name === '')
    throw new ProtocolError(`<${localName(el)}/> in a schema answer lacks ns or name`);
  return { ns, name };
}

function readMethod(el: Element): MethodDescriptor {
  const { ns, name } = nsName(el);
  const responseName = el.attrs['response'];
  const errors: Record<string, ErrorDescriptor> = {};
  for (const c of childElements(el)) {
    if (localName(c) !== 'error') continue;
    const errName = c.attrs['name'];
    const condition = c.attrs['condition'];
    if (typeof errName !== 'string' || !isCondition(condition))
      throw new ProtocolError(`declared error of {${ns}}${name} lacks a name or a known condition`);
    const rawType = c.attrs['type'];
    const type: StanzaErrorType = isType(rawType) ? rawType : defaultErrorType(condition);
    const text = c.getText();
    errors[errName] = text.trim() === '' ? { condition, type } : { condition, type, schema: parseJson(text, errName) };
  }
  return {
    kind: 'method',
    ns,
    name,
    responseName: typeof responseName === 'string' && responseName !== '' ? responseName : name,
    readOnly: el.attrs['read-only'] === 'true',
    idempotent: el.attrs['idempotent'] === 'true',
    request: schemaOf(el, 'request'),
    response: schemaOf(el, 'response'),
    errors,
  };
}

function isType(t: unknown): t is StanzaErrorType {
  return t === 'auth' || t === 'cancel' || t === 'continue' || t === 'modify' || t === 'wait';
}

function isCondition(c: unknown): c is StanzaErrorCondition {
  return typeof c === 'string' && (STANZA_ERROR_CONDITIONS as readonly string[]).includes(c);
}

function schemaOf(el: Element, child: string): JsonSchema {
  const c = findChild(el, child);
  if (c === undefined)
    throw new ProtocolError(`<${localName(el)} name='${String(el.attrs['name'])}'/> lacks <${child}/>`);
  return parseJson(c.getText(), child);
}

function parseJson(text: string, what: string): JsonSchema {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ProtocolError(`the ${what} schema is not JSON`, { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ProtocolError(`the ${what} schema is not a JSON object`);
  return value as JsonSchema;
}
