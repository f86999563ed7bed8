/**
 * `xmppbus call <jid> <method> [json]`: calls a method of a service. The method's JSON Schemas
 * come from the service itself (schema reflection), so JSON input is validated and encoded to
 * the same XML the service's TypeScript contract produces. `--xml` sends the request element
 * as given and prints the raw response element.
 */
import type { Command } from 'commander';
import { localName, serialize, xml, type Element } from '@xmppbus/core';
import { methodFromDescriptor, type RequestOf, type MethodContract } from '@xmppbus/schema';
import type { Context } from '../context.js';
import { UsageError } from '../errors.js';
import { contractLabel, parseContractRef, parseJson, parseXmlInput, readInput } from '../input.js';
import type { Wrap } from '../action.js';
import { findMethod } from '../reflect.js';

interface CallFlags {
  xml?: boolean;
  get?: boolean;
}

export function registerCall(program: Command, wrap: Wrap): void {
  program
    .command('call')
    .description('call a method of a service and print the response')
    .argument('<jid>', 'the service (component domain or any JID)')
    .argument('<method>', 'ns#name, {ns}name, or name when unique at the service')
    .argument('[input]', 'request as JSON (or XML with --xml); default: stdin, else {}')
    .option('--xml', 'send the input as the raw request element and print the raw response element')
    .option('--get', 'with --xml: send an IQ get (read-only method); default set')
    .addHelpText(
      'after',
      `
Examples:
  xmppbus call orders.localhost create '{"sku":"A1","qty":2}'
  echo '{"orderId":"o1"}' | xmppbus call orders.localhost urn:example:orders:1#get --json
  xmppbus call orders.localhost urn:example:orders:1#create --xml '<create xmlns="urn:example:orders:1"><sku>A1</sku><qty>2</qty></create>'`,
    )
    .action(wrap(call));
}

async function call(
  ctx: Context,
  jid: string,
  methodArg: string,
  inputArg: string | undefined,
  flags: CallFlags,
): Promise<void> {
  const ref = parseContractRef(methodArg, 'method');
  if (flags.get && !flags.xml)
    throw new UsageError('--get applies to --xml calls (a reflected method knows its IQ type)');
  const text = await readInput(inputArg, ctx.io);
  // Input is checked before connecting: a typo costs no round trip.
  const xmlRequest = flags.xml && text !== undefined ? parseXmlInput(text, 'request') : undefined;
  const request = flags.xml || text === undefined ? {} : parseJson(text, 'request');
  const bus = await ctx.connect();
  const wait = { timeout: ctx.timeout, signal: ctx.signal };
  if (flags.xml) {
    const payload = xmlRequest ?? defaultElement(ref);
    checkRoot(payload, ref);
    const reply = await bus.session.caller.request(
      xml('iq', { type: flags.get ? 'get' : 'set', to: jid }, payload),
      wait,
    );
    const response = reply.children.find((c): c is Element => typeof c !== 'string');
    const out = response === undefined ? '' : serialize(response);
    ctx.out.result({ xml: out }, () => out || '(empty result)');
    return;
  }
  const descriptor = await findMethod(bus.session, jid, ref, wait);
  const method: MethodContract = methodFromDescriptor(descriptor);
  // The client validates against the reflected schema before anything is sent.
  const response = await bus.client.call(method, jid, request as RequestOf<MethodContract>, wait);
  ctx.out.result(response, () => ctx.out.prettyJson(response));
  if (ctx.globals.verbose) ctx.out.note(`called ${contractLabel(descriptor)} at ${jid}`);
}

function defaultElement(ref: { ns: string | undefined; name: string }): Element {
  if (ref.ns === undefined) throw new UsageError('--xml without input needs the method as ns#name');
  return xml(ref.name, { xmlns: ref.ns });
}

/** The XML given must be the method's element, so that `call` never sends something else than it says. */
function checkRoot(el: Element, ref: { ns: string | undefined; name: string }): void {
  const ns = el.getNS();
  if (localName(el) !== ref.name || (ref.ns !== undefined && ns !== ref.ns))
    throw new UsageError(
      `the XML request is <${localName(el)}${ns ? ` xmlns='${ns}'` : ''}>, not the method ${contractLabel(ref)}`,
    );
}
