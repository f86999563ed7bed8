/**
 * `xmppbus send <jid> <contract> [json] --qos 0|1|2` and `xmppbus listen <contract…>`: messages
 * with the QoS levels of docs/protocol.md §5. `send` encodes JSON with the schema the receiver
 * reflects (else one inferred from the value) and returns once the level's guarantee is met;
 * `listen` prints the messages this identity receives, for the contracts named.
 */
import type { Command } from 'commander';
import { StanzaError, serialize, type Element, type Session } from '@xmppbus/core';
import type { QosLevel } from '@xmppbus/messaging';
import { payloadFromDescriptor, rawPayload, type PayloadContract } from '@xmppbus/schema';
import type { Context } from '../context.js';
import { UsageError } from '../errors.js';
import { contractLabel, parseContractRef, parseJson, parseXmlInput, readInput, type ContractRef } from '../input.js';
import { countOption, live } from '../live.js';
import { elementToJson, inferContract } from '../payload.js';
import type { Wrap } from '../action.js';
import { findMessage } from '../reflect.js';

interface SendFlags {
  qos: string;
  xml?: boolean;
  ttl?: string;
}

interface ListenFlags {
  xml?: boolean;
  count?: string;
}

export function registerMessaging(program: Command, wrap: Wrap): void {
  program
    .command('send')
    .description('send a message with QoS 0, 1 or 2 and wait for its guarantee')
    .argument('<jid>', 'the receiver')
    .argument('<contract>', 'the message contract: ns#name or {ns}name')
    .argument('[input]', 'the message as JSON (or XML with --xml); default: stdin')
    .option('-q, --qos <level>', '0 at most once, 1 at least once, 2 exactly once', '1')
    .option('--xml', 'send the input as the raw payload element')
    .option('--ttl <duration>', "give up after this long: ms, or '30s', '5m', '1h'")
    .action(wrap(send));
  program
    .command('listen')
    .description('print the messages this identity receives (any QoS), until Ctrl-C')
    .argument('<contracts...>', 'message contracts to accept: ns#name or {ns}name')
    .option('--xml', 'print payloads as XML')
    .option('-n, --count <n>', 'exit after this many messages')
    .action(wrap(listen));
}

function qosOf(text: string): QosLevel {
  if (text === '0' || text === '1' || text === '2') return Number(text) as QosLevel;
  throw new UsageError(`--qos must be 0, 1 or 2, got '${text}'`);
}

function needNs(ref: ContractRef, text: string): { ns: string; name: string } {
  if (ref.ns === undefined) throw new UsageError(`contract '${text}' needs its namespace: ns#name`);
  return { ns: ref.ns, name: ref.name };
}

async function send(
  ctx: Context,
  jid: string,
  contractArg: string,
  inputArg: string | undefined,
  flags: SendFlags,
): Promise<void> {
  const qos = qosOf(flags.qos);
  const ref = needNs(parseContractRef(contractArg), contractArg);
  if (flags.ttl !== undefined && !/^\d+(ms|s|m|h|d)?$/.test(flags.ttl))
    throw new UsageError(`--ttl must be ms or a duration like 30s, 5m, 1h, got '${flags.ttl}'`);
  const text = await readInput(inputArg, ctx.io);
  if (text === undefined) throw new UsageError('no message given: pass it as an argument or on stdin');
  // Input is checked before connecting: a typo costs no round trip.
  const value: unknown = flags.xml ? parseXmlInput(text, 'message') : parseJson(text, 'message');
  const bus = await ctx.connect();
  const wait = { timeout: ctx.timeout, signal: ctx.signal };
  const contract = flags.xml ? rawPayload(ref) : await messageContract(ctx, bus.session, jid, ref, value);
  const messenger = bus.messenger;
  await messenger.start(wait);
  const ttl = flags.ttl === undefined ? undefined : /^\d+$/.test(flags.ttl) ? Number(flags.ttl) : flags.ttl;
  await messenger.send(contract, jid, value as never, { ...wait, qos, ...(ttl !== undefined && { ttl }) });
  // QoS 2: `send` resolves on `received`; the exactly-once `deliver` still has to go out.
  await messenger.flush(wait);
  const result = { to: jid, contract: contractLabel(ref), qos };
  ctx.out.result(
    result,
    () =>
      `sent ${contractLabel(ref)} to ${jid} (QoS ${qos}${qos === 0 ? ', written' : qos === 1 ? ', acknowledged' : ', delivered exactly once'})`,
  );
}

/** The receiver's own schema when it reflects the contract, else one inferred from the value. */
async function messageContract(
  ctx: Context,
  session: Session,
  jid: string,
  ref: { ns: string; name: string },
  value: unknown,
): Promise<PayloadContract> {
  try {
    const d = await findMessage(session, jid, ref, { timeout: ctx.timeout, signal: ctx.signal });
    if (d !== undefined) {
      if (d.schema['x-xmppbus-raw'] === true)
        throw new UsageError(`${jid} takes ${contractLabel(ref)} as raw XML: use --xml`);
      return payloadFromDescriptor(d);
    }
  } catch (err) {
    // A receiver that does not reflect (an account, another library) still gets the message.
    if (!(err instanceof StanzaError)) throw err;
  }
  if (ctx.globals.verbose) ctx.out.note(`${jid} does not describe ${contractLabel(ref)}: encoding the JSON as given`);
  return inferContract(ref.ns, ref.name, value);
}

async function listen(ctx: Context, contractArgs: string[], flags: ListenFlags): Promise<void> {
  const max = countOption(flags.count);
  const refs = contractArgs.map((t) => needNs(parseContractRef(t), t));
  const bus = await ctx.connect();
  const messenger = bus.messenger;
  const running = live(bus, ctx.signal);
  let seen = 0;
  for (const ref of refs)
    messenger.handle(rawPayload(ref), (el: Element, m) => {
      const payload = flags.xml ? serialize(el) : elementToJson(el);
      const json = {
        from: m.from,
        to: m.to,
        qos: m.qos,
        contract: contractLabel(ref),
        ...(m.id !== undefined && { id: m.id }),
        ...(m.delayedFrom && { delayedFrom: m.delayedFrom.toISOString() }),
        payload,
      };
      const { c } = ctx.out;
      ctx.out.result(
        json,
        () =>
          `${c.dim(new Date().toISOString().slice(11, 23))} ${c.green(m.from)} ${c.dim(`QoS ${m.qos}`)} ${contractLabel(ref)} ${typeof payload === 'string' ? payload : JSON.stringify(payload)}`,
      );
      if (max !== undefined && ++seen >= max) running.stop();
    });
  await messenger.start({ timeout: ctx.timeout, signal: ctx.signal });
  ctx.out.note(
    `listening as ${bus.session.address} for ${refs.map((r) => contractLabel(r)).join(', ')} (Ctrl-C to stop)`,
  );
  try {
    await running.done;
  } finally {
    // Finish the handler in progress and answer what was received; then the bus closes.
    await messenger.drain({ timeout: 2000 }).catch(() => undefined);
  }
}
