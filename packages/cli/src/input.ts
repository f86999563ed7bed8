/** Command input: JSON or XML from an argument or stdin, and contract references. */
import { parseXml, XmlError, type Element } from '@xmppbus/core';
import { UsageError } from './errors.js';
import type { Io } from './output.js';

/** Most input read from stdin, bytes (well above any stanza a server accepts). */
const MAX_STDIN = 4 * 1024 * 1024;

/**
 * The input text: the argument, else stdin when it is not a terminal (`-` forces stdin).
 * `undefined` when there is none.
 */
export async function readInput(arg: string | undefined, io: Io): Promise<string | undefined> {
  if (arg !== undefined && arg !== '-') return arg;
  if (arg === undefined && io.stdin.isTTY === true) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of io.stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buf.length;
    if (size > MAX_STDIN) throw new UsageError(`stdin input exceeds ${MAX_STDIN} bytes`);
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text.trim() === '' && arg === undefined ? undefined : text;
}

/** Parses JSON input, or throws a UsageError saying where it broke. */
export function parseJson(text: string, what = 'input'): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UsageError(`${what} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** Parses XML input (no DTDs or entities), or throws a UsageError. */
export function parseXmlInput(text: string, what = 'input'): Element {
  try {
    return parseXml(text.trim());
  } catch (err) {
    if (err instanceof XmlError) throw new UsageError(`${what} is not valid XML: ${err.message}`, { cause: err });
    throw err;
  }
}

/** A contract named on the command line: `ns#name`, `{ns}name`, or a bare `name` (namespace looked up). */
export interface ContractRef {
  readonly ns: string | undefined;
  readonly name: string;
}

const NAME = /^[A-Za-z_][\w.-]*$/;

export function parseContractRef(text: string, what = 'contract'): ContractRef {
  let ns: string | undefined;
  let name: string;
  const clark = /^\{([^}]*)\}(.+)$/.exec(text);
  if (clark) [, ns, name] = clark as unknown as [string, string, string];
  else {
    // The last '#': namespaces may hold one themselves (http://jabber.org/protocol/disco#info).
    const hash = text.lastIndexOf('#');
    if (hash >= 0) {
      ns = text.slice(0, hash);
      name = text.slice(hash + 1);
    } else name = text;
  }
  if (!NAME.test(name))
    throw new UsageError(`${what} '${text}': want ns#name, {ns}name or name (an XML element name without prefix)`);
  if (ns === '') throw new UsageError(`${what} '${text}': the namespace is empty`);
  return { ns, name };
}

/** `ns#name`, the way the CLI prints contracts. */
export function contractLabel(c: { ns: string | undefined; name: string }): string {
  return c.ns === undefined ? c.name : `${c.ns}#${c.name}`;
}
