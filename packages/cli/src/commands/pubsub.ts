/**
 * `xmppbus publish <node> <event> [json]` and `xmppbus tail <node>`: XEP-0060 items on the
 * configured pub/sub service (`pubsub.service`, or `--pubsub`). JSON input is encoded with the
 * event schema another publisher reflects (`--schema-from`), else with a schema inferred from
 * the value; `tail` prints items as they arrive, decoded the same way.
 */
import type { Command } from 'commander';
import {
  StanzaError,
  localName,
  randomId,
  serialize,
  type Element,
  type Session,
  type WaitOptions,
} from '@xmppbus/core';
import type { BusConfig } from '@xmppbus/bus';
import { DEFAULT_MAX_BATCH_EVENTS, batchEventId, isBatch, unwrapBatch, type PubSubEvent } from '@xmppbus/pubsub';
import { encode, payloadFromDescriptor, type PayloadContract } from '@xmppbus/schema';
import type { Context } from '../context.js';
import { UsageError } from '../errors.js';
import { contractLabel, parseContractRef, parseJson, parseXmlInput, readInput, type ContractRef } from '../input.js';
import { countOption, live, type Live } from '../live.js';
import { inferContract, payloadJson } from '../payload.js';
import type { Wrap } from '../action.js';
import { reflected } from '../reflect.js';

interface PublishFlags {
  id?: string;
  xml?: boolean;
  create?: boolean;
  pubsub?: string;
  schemaFrom?: string;
}

interface TailFlags {
  xml?: boolean;
  create?: boolean;
  pubsub?: string;
  schemaFrom?: string;
  count?: string;
}

export function registerPubSub(program: Command, wrap: Wrap): void {
  program
    .command('publish')
    .description('publish an event to a pub/sub node')
    .argument('<node>', 'the node')
    .argument('<event>', 'the event contract: ns#name or {ns}name')
    .argument('[input]', 'the event as JSON (or XML with --xml); default: stdin')
    .option('--id <id>', 'item id (same id = same event; default random)')
    .option('--xml', 'publish the input as the raw payload element')
    .option('--create', 'create the node first when it does not exist')
    .option('--pubsub <jid>', 'the pub/sub service (default: the config’s pubsub.service)')
    .option('--schema-from <jid>', 'validate and encode with the event schema this publisher reflects')
    .action(wrap(publish));
  program
    .command('tail')
    .description('print the events of a pub/sub node as they arrive (Ctrl-C to stop)')
    .argument('<node>', 'the node')
    .option('--xml', 'print payloads as XML')
    .option('--pubsub <jid>', 'the pub/sub service (default: the config’s pubsub.service)')
    .option('--schema-from <jid>', 'decode with the event schemas this publisher reflects')
    .option('-n, --count <n>', 'exit after this many items')
    .option('--create', 'create the node first when it does not exist')
    .action(wrap(tail));
}

function withPubSub(jid: string | undefined): (config: BusConfig) => BusConfig {
  return (config) => {
    const service = jid ?? config.pubsub?.service;
    if (service === undefined)
      throw new UsageError('no pub/sub service: set pubsub.service in the config, XMPPBUS_PUBSUB_SERVICE or --pubsub');
    return { ...config, pubsub: { ...config.pubsub, service } };
  };
}

async function publish(
  ctx: Context,
  node: string,
  eventArg: string,
  inputArg: string | undefined,
  flags: PublishFlags,
): Promise<void> {
  const ref = parseContractRef(eventArg, 'event');
  const text = await readInput(inputArg, ctx.io);
  if (text === undefined) throw new UsageError('no event given: pass it as an argument or on stdin');
  if (ref.ns === undefined && !flags.xml) throw new UsageError(`event '${eventArg}' needs its namespace: ns#name`);
  // Input is checked before connecting: a typo costs no round trip.
  const xmlPayload = flags.xml ? parseXmlInput(text, 'event') : undefined;
  if (xmlPayload && (localName(xmlPayload) !== ref.name || (ref.ns !== undefined && xmlPayload.getNS() !== ref.ns)))
    throw new UsageError(`the XML event is <${localName(xmlPayload)}>, not ${contractLabel(ref)}`);
  const value = xmlPayload ? undefined : parseJson(text, 'event');
  const inferred = xmlPayload || flags.schemaFrom ? undefined : inferContract(ref.ns!, ref.name, value);
  const bus = await ctx.connect({ adjust: withPubSub(flags.pubsub) });
  const wait = { timeout: ctx.timeout, signal: ctx.signal };
  let payload: Element;
  if (xmlPayload) payload = xmlPayload;
  else {
    const contract = inferred ?? (await eventContract(bus.session, flags.schemaFrom!, ref, wait));
    payload = encode(contract, value as never);
  }
  const pubsub = bus.pubsub;
  await pubsub.start(wait);
  if (flags.create) await pubsub.ensureNode(node, undefined, { ...wait, reconfigure: false });
  const id = await pubsub
    .publishElement(node, payload, { ...wait, ...(flags.id !== undefined && { id: flags.id }) })
    .catch((err: unknown) => {
      throw nodeError(err, pubsub.service, node);
    });
  const result = { service: pubsub.service, node, id };
  ctx.out.result(result, () => `published ${id} to ${pubsub.service}/${node}`);
}

/** A missing node, said in words (the service's answer is a bare `item-not-found`). */
function nodeError(err: unknown, service: string, node: string): unknown {
  if (err instanceof StanzaError && err.condition === 'item-not-found')
    return new StanzaError(
      {
        condition: err.condition,
        type: err.type,
        text: `node '${node}' does not exist on ${service} (--create makes it)`,
      },
      { cause: err },
    );
  return err;
}

/** The event contract `ref` as `publisher` reflects it. */
async function eventContract(
  session: Session,
  publisher: string,
  ref: ContractRef,
  wait: WaitOptions,
): Promise<PayloadContract> {
  const found = await reflected(session, publisher, 'event', ref, wait);
  const d = found[0];
  if (d === undefined) throw new UsageError(`${publisher} describes no event ${contractLabel(ref)}`);
  return payloadFromDescriptor(d);
}

async function tail(ctx: Context, node: string, flags: TailFlags): Promise<void> {
  const max = countOption(flags.count);
  const bus = await ctx.connect({ adjust: withPubSub(flags.pubsub) });
  const wait = { timeout: ctx.timeout, signal: ctx.signal };
  const contracts = new Map<string, PayloadContract>();
  if (flags.schemaFrom)
    for (const d of await reflected(bus.session, flags.schemaFrom, 'event', undefined, wait))
      contracts.set(`{${d.ns}}${d.name}`, payloadFromDescriptor(d));
  const pubsub = bus.pubsub;
  await pubsub.start(wait);
  // A JID of its own per run (components own their whole domain), so that two tails of one
  // identity never share, or end, each other's subscription. Lower case: servers nodeprep the
  // local part, and the notifications are matched to the listener by the exact `to`.
  const transport = bus.config.transport;
  const jid = transport?.kind === 'component' ? `tail-${randomId().toLowerCase()}@${bus.session.address}` : undefined;
  if (flags.create) await pubsub.ensureNode(node, undefined, { ...wait, reconfigure: false });
  let seen = 0;
  let running: Live | undefined;
  const off = pubsub.onNode(
    node,
    (event) => {
      for (const line of eventLines(ctx, event, contracts, flags.xml === true)) {
        ctx.out.result(line.json, () => line.text);
        if (line.item && max !== undefined && ++seen >= max) running?.stop();
      }
    },
    jid === undefined ? {} : { jid },
  );
  const sub = await pubsub.subscribe(node, { ...wait, ...(jid !== undefined && { jid }) }).catch((err: unknown) => {
    off();
    throw nodeError(err, pubsub.service, node);
  });
  running = live(bus, ctx.signal);
  ctx.out.note(`tailing ${pubsub.service}/${node} as ${sub.jid} (Ctrl-C to stop)`);
  try {
    await running.done;
  } finally {
    off();
    // Ctrl-C has fired ctx.signal: leave with a fresh, bounded wait.
    await pubsub
      .unsubscribe(node, { jid: sub.jid, timeout: Math.min(ctx.timeout, 5000), ...(sub.subid && { subid: sub.subid }) })
      .catch(() => undefined);
  }
}

interface Line {
  json: unknown;
  text: string;
  item: boolean;
}

type Item = Extract<PubSubEvent, { type: 'items' }>['items'][number];

function expandBatch(item: Item): Item[] {
  if (!isBatch(item.payload)) return [item];
  try {
    const { events } = unwrapBatch(item.payload, DEFAULT_MAX_BATCH_EVENTS);
    return events.map((payload, i) => ({ ...item, id: batchEventId(item.id, i), payload }));
  } catch {
    return [item]; // a malformed batch is shown as it came
  }
}

function eventLines(
  ctx: Context,
  e: PubSubEvent,
  contracts: ReadonlyMap<string, PayloadContract>,
  asXml: boolean,
): Line[] {
  const { c } = ctx.out;
  const base = { service: e.service, node: e.node, ...(e.delayedFrom && { delayedFrom: e.delayedFrom.toISOString() }) };
  const stamp = c.dim(new Date().toISOString().slice(11, 23));
  switch (e.type) {
    case 'items':
      // A batch item (docs/protocol.md §4) prints one line per event, id `<item>#<i>`.
      return e.items.flatMap(expandBatch).map((item) => {
        const el = item.payload;
        const event = el === undefined ? undefined : `${el.getNS() ?? ''}#${localName(el)}`;
        const payload =
          el === undefined
            ? undefined
            : asXml
              ? serialize(el)
              : payloadJson(el, contracts.get(`{${el.getNS() ?? ''}}${localName(el)}`));
        const json = {
          type: 'item',
          ...base,
          id: item.id,
          ...(item.publisher && { publisher: item.publisher }),
          ...(event && { event }),
          payload,
        };
        const body =
          payload === undefined
            ? c.dim('(no payload)')
            : typeof payload === 'string'
              ? payload
              : JSON.stringify(payload);
        return {
          json,
          text: `${stamp} ${c.green(e.node)} ${c.bold(item.id)} ${event ? c.dim(event) + ' ' : ''}${body}`,
          item: true,
        };
      });
    case 'retract':
      return e.ids.map((id) => ({
        json: { type: 'retract', ...base, id },
        text: `${stamp} ${c.yellow(e.node)} retracted ${id}`,
        item: false,
      }));
    case 'purge':
      return [{ json: { type: 'purge', ...base }, text: `${stamp} ${c.yellow(e.node)} purged`, item: false }];
    case 'delete':
      return [
        {
          json: { type: 'delete', ...base, ...(e.redirect && { redirect: e.redirect }) },
          text: `${stamp} ${c.red(e.node)} deleted`,
          item: false,
        },
      ];
    case 'configuration':
      return [
        {
          json: { type: 'configuration', ...base },
          text: `${stamp} ${c.dim(e.node)} configuration changed`,
          item: false,
        },
      ];
  }
}
