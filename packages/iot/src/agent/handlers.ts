/**
 * The agent's wire handlers: readout (`req`/`cancel`), observe (`subscribe`/`unsubscribe`) and
 * control (`set` as IQ, message or QoS command), for every namespace of both dialects. Each
 * request is checked in the same order: draining → roster trust (`forbidden`) → parse
 * (`bad-request`) → provisioning (may narrow; `forbidden`) → bounds (`resource-constraint`).
 * Every answer uses the request's namespace, so the peer gets back its own dialect.
 */
import {
  StanzaError,
  bareJid,
  errorReply,
  localName,
  resultReply,
  toError,
  xml,
  type Element,
  type Logger,
  type Session,
} from '@xmppbus/core';
import type { Messenger, MessageContext } from '@xmppbus/messaging';
import { rawPayload } from '@xmppbus/schema';
import { LEGACY_CODEC, NF_CODEC } from '../dialects/codec.js';
import type { ControlRequest, DialectCodec, ParseBounds, ReadRequest } from '../dialects/model.js';
import type { Roster } from '../roster/roster.js';
import type { AgentLimits, ControlContext, FieldSample, FieldValue, ParameterValue, Provisioning } from '../types.js';
import {
  CTR_NAMESPACES,
  EVENTS_NAMESPACES,
  SD_NAMESPACES,
  familyOf,
  type NamespaceFamily,
} from '../wire/namespaces.js';
import { CAT } from '../wire/values.js';
import { validateOperation, type ParameterStore, type ValidOperation } from './control.js';
import type { ObserveEngine, Subscription } from './observe.js';
import type { FieldStore } from './things.js';

/** Told about every applied control operation. */
export type ControlListener = (change: { name: string; value: ParameterValue; context: ControlContext }) => void;

export interface HandlerDeps {
  agent: object;
  session: Session;
  fields: FieldStore;
  params: ParameterStore;
  roster: Roster;
  open: boolean;
  provisioning: Provisioning | undefined;
  limits: AgentLimits;
  logger: Logger;
  onSet: (name: string, value: FieldValue, node: string | undefined) => void;
}

const NO_STORE = 'urn:xmpp:hints';
/** The shortest heartbeat (maxInterval) a subscriber may ask for: a zero one would be a flood. */
const MIN_HEARTBEAT = 1000;

function codecOf(family: NamespaceFamily): DialectCodec {
  return family.dialect === 'nf' ? NF_CODEC : LEGACY_CODEC;
}

function forbidden(): StanzaError {
  return new StanzaError({ condition: 'forbidden', type: 'cancel', text: 'Access denied.' });
}

export class AgentHandlers {
  observe: ObserveEngine | undefined;
  draining = false;
  readonly #d: HandlerDeps;
  readonly #bounds: ParseBounds;
  readonly #perMessage: number;
  readonly #controlListeners: ControlListener[] = [];

  constructor(deps: HandlerDeps) {
    this.#d = deps;
    this.#bounds = {
      fields: deps.limits.fieldsPerRequest ?? 256,
      nodes: deps.limits.fieldsPerRequest ?? 256,
      parameters: deps.limits.parametersPerRequest ?? 64,
    };
    this.#perMessage = Math.max(1, deps.limits.fieldsPerMessage ?? 100);
  }

  trusted(jid: string | undefined): boolean {
    if (jid === undefined) return false;
    return this.#d.open || this.#d.roster.isMutual(jid);
  }

  onControl(listener: ControlListener): () => void {
    this.#controlListeners.push(listener);
    return () => {
      const i = this.#controlListeners.indexOf(listener);
      if (i >= 0) this.#controlListeners.splice(i, 1);
    };
  }

  /** Registers every handler; returns the removers. */
  register(messenger: Messenger | undefined): (() => void)[] {
    const { router, disco } = this.#d.session;
    const offs: (() => void)[] = [];
    const on = (
      ns: string,
      name: string,
      fn: (iq: Element, payload: Element, family: NamespaceFamily) => void,
    ): void => {
      offs.push(router.handle(ns, name, (iq, payload) => fn(iq, payload, familyOf(ns)!)));
    };
    for (const ns of [...SD_NAMESPACES, ...EVENTS_NAMESPACES, ...CTR_NAMESPACES]) {
      offs.push(router.delegateAccess(ns), disco.addFeature(ns));
    }
    for (const ns of SD_NAMESPACES) {
      on(ns, 'req', (iq, p, f) => void this.#guard(iq, () => this.#read(iq, p, f)));
      on(ns, 'cancel', (iq, p, f) => this.#cancel(iq, p, f));
    }
    for (const ns of EVENTS_NAMESPACES) {
      on(ns, 'subscribe', (iq, p, f) => void this.#guard(iq, () => this.#subscribe(iq, p, f)));
      on(ns, 'unsubscribe', (iq, p, f) => this.#unsubscribe(iq, p, f));
    }
    for (const ns of CTR_NAMESPACES) on(ns, 'set', (iq, p, f) => void this.#guard(iq, () => this.#controlIq(iq, p, f)));
    if (messenger) {
      for (const ns of CTR_NAMESPACES) {
        const family = familyOf(ns)!;
        offs.push(messenger.handle(rawPayload({ ns, name: 'set' }), (el, ctx) => this.#command(el, ctx, family)));
      }
    } else {
      offs.push(this.#d.session.onMessage((m) => this.#controlMessage(m)));
    }
    return offs;
  }

  /** Sends an observe event (one message, or several when it is large). */
  sendEvent(sub: Subscription, fields: FieldSample[]): void {
    const sdFamily = sub.family;
    this.#sendReport(sub.peer, sub.codec, sdFamily, sub.id, fields);
  }

  /** Runs an async handler; a thrown StanzaError (or anything) becomes the IQ's error reply. */
  async #guard(iq: Element, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.#error(iq, err);
    }
  }

  #error(iq: Element, err: unknown): void {
    let e: StanzaError;
    if (err instanceof StanzaError) e = err;
    else {
      this.#d.logger.error('IoT agent: request failed', toError(err));
      e = new StanzaError({ condition: 'internal-server-error', text: 'internal error' });
    }
    this.#send(errorReply(iq, e));
  }

  #send(stanza: Element): void {
    this.#d.session.send(stanza).catch(() => undefined); // a reply lost to a dropped link is the requester's timeout
  }

  #admit(from: string | undefined): void {
    if (this.draining)
      throw new StanzaError({ condition: 'service-unavailable', type: 'wait', text: 'agent is shutting down' });
    if (!this.trusted(from)) throw forbidden();
  }

  async #narrowFields(from: string, fields: readonly string[] | undefined): Promise<readonly string[] | undefined> {
    const hook = this.#d.provisioning?.canRead;
    if (!hook) return fields;
    const decision = await hook(bareJid(from), fields);
    if (decision === true) return fields;
    if (decision === false || decision.fields.length === 0) throw forbidden();
    return fields ? fields.filter((f) => decision.fields.includes(f)) : decision.fields;
  }

  #checkNodes(nodes: readonly string[] | undefined): void {
    if (!nodes) return;
    for (const n of nodes) {
      let found = false;
      for (const s of this.#d.fields.values()) if (s.spec.node === n) found = true;
      for (const p of this.#d.params.values()) if (p.spec.node === n) found = true;
      if (!found) throw new StanzaError({ condition: 'item-not-found', type: 'cancel', text: `node ${n} not found` });
    }
  }

  async #read(iq: Element, payload: Element, family: NamespaceFamily): Promise<void> {
    const from = iq.attrs['from'];
    this.#admit(from);
    const codec = codecOf(family);
    const parsed = codec.parseRead(payload, this.#bounds);
    const fields = await this.#narrowFields(from!, parsed.fields);
    this.#checkNodes(parsed.nodes);
    const samples = this.#collect({ ...parsed, fields });
    if (codec.inlineReadout && samples.length <= this.#perMessage) {
      this.#send(resultReply(iq, codec.report(family, parsed.id, samples, [], true)));
      return;
    }
    this.#send(resultReply(iq, codec.accepted(family, parsed.id)));
    this.#sendReport(from!, codec, family, parsed.id, samples);
  }

  #collect(req: ReadRequest): FieldSample[] {
    const out: FieldSample[] = [];
    const wanted = req.fields ? new Set(req.fields) : undefined;
    const historical = (req.categories & CAT.historical) !== 0;
    for (const state of this.#d.fields.values()) {
      const node = state.spec.node;
      if (req.nodes && (node === undefined || !req.nodes.includes(node))) continue;
      if (wanted && !wanted.has(state.spec.name)) continue;
      if ((state.mask & req.categories & ~CAT.historical) !== 0) out.push(state.current);
      if (historical) out.push(...this.#d.fields.history(state, req.from ?? -Infinity, req.to ?? Infinity));
    }
    return out;
  }

  /** Sends samples as report messages of at most `fieldsPerMessage` fields; the last one is marked done. */
  #sendReport(
    to: string,
    codec: DialectCodec,
    family: NamespaceFamily,
    id: string,
    samples: readonly FieldSample[],
  ): void {
    const per = this.#perMessage;
    let i = 0;
    do {
      const chunk = samples.length <= per ? samples : samples.slice(i, i + per);
      i += per;
      const done = i >= samples.length;
      const report = codec.report(family, id, chunk, [], done);
      this.#send(xml('message', { to, type: 'normal' }, report, xml('no-store', { xmlns: NO_STORE })));
    } while (i < samples.length);
  }

  #cancel(iq: Element, payload: Element, family: NamespaceFamily): void {
    // Readouts are answered at once: there is never a queued one to cancel.
    try {
      const id = codecOf(family).requestId(payload);
      const answer = family.dialect === 'legacy' ? xml('cancelled', { xmlns: family.sd, seqnr: id }) : undefined;
      this.#send(resultReply(iq, answer));
    } catch (err) {
      this.#error(iq, err);
    }
  }

  async #subscribe(iq: Element, payload: Element, family: NamespaceFamily): Promise<void> {
    const from = iq.attrs['from'];
    this.#admit(from);
    const observe = this.observe!;
    const codec = codecOf(family);
    const parsed = codec.parseSubscribe(payload, this.#bounds);
    if (parsed.maxInterval !== undefined && parsed.maxInterval < MIN_HEARTBEAT)
      throw new StanzaError({ condition: 'bad-request', type: 'modify', text: 'maximum interval below 1 s' });
    const fields = await this.#narrowFields(from!, parsed.fields);
    this.#checkNodes(parsed.nodes);
    const bare = bareJid(from!);
    if (!observe.has(from!, parsed.id)) {
      const perPeer = this.#d.limits.subscriptionsPerPeer ?? 8;
      const total = this.#d.limits.subscriptions ?? 1000;
      if (observe.countFor(bare) >= perPeer || observe.size >= total)
        throw new StanzaError({ condition: 'resource-constraint', type: 'wait', text: 'too many subscriptions' });
    }
    const rules = parsed.rules && fields ? parsed.rules.filter((r) => fields.includes(r.field)) : parsed.rules;
    const sub = observe.add({
      id: parsed.id,
      peer: from!,
      bare,
      family,
      codec,
      request: { ...parsed, fields, rules },
    });
    this.#send(resultReply(iq, codec.accepted(family, parsed.id)));
    if (parsed.immediate) observe.send(sub);
  }

  #unsubscribe(iq: Element, payload: Element, family: NamespaceFamily): void {
    try {
      const id = codecOf(family).requestId(payload);
      this.observe?.remove(iq.attrs['from'] ?? '', id);
      this.#send(resultReply(iq));
    } catch (err) {
      this.#error(iq, err);
    }
  }

  async #controlIq(iq: Element, payload: Element, family: NamespaceFamily): Promise<void> {
    const from = iq.attrs['from'];
    this.#admit(from);
    const codec = codecOf(family);
    const request = codec.parseControl(payload, this.#bounds);
    await this.#control(request, codec, family, { from: from!, dialect: family.dialect, via: 'iq' });
    this.#send(resultReply(iq, codec.controlResult(family)));
  }

  /** A `<message>` with a `set`: no answer whatever happens (XEP-0325 §3.1). */
  #controlMessage(m: Element): void {
    if (m.attrs['type'] === 'error') return;
    for (const c of m.children) {
      if (typeof c === 'string' || localName(c) !== 'set') continue;
      const family = familyOf(c.attrs['xmlns']);
      if (!family) continue;
      const from = m.attrs['from'];
      void (async () => {
        this.#admit(from);
        const codec = codecOf(family);
        await this.#control(codec.parseControl(c, this.#bounds), codec, family, {
          from: from!,
          dialect: family.dialect,
          via: 'message',
        });
      })().catch((err: unknown) =>
        this.#d.logger.debug(`IoT agent: control message from ${from} refused`, toError(err)),
      );
      return;
    }
  }

  /** A QoS command (messaging): a refusal is thrown back to the messenger, which tells the sender. */
  async #command(el: Element, ctx: MessageContext, family: NamespaceFamily): Promise<void> {
    this.#admit(ctx.from);
    const codec = codecOf(family);
    await this.#control(codec.parseControl(el, this.#bounds), codec, family, {
      from: ctx.from,
      dialect: family.dialect,
      via: ctx.qos === 0 ? 'message' : 'command',
      delayedFrom: ctx.delayedFrom,
    });
  }

  async #control(
    request: ControlRequest,
    codec: DialectCodec,
    family: NamespaceFamily,
    ctx: ControlContext,
  ): Promise<void> {
    let ops = request.operations;
    const hook = this.#d.provisioning?.canControl;
    if (hook) {
      const decision = await hook(
        bareJid(ctx.from),
        ops.map((o) => o.name),
      );
      if (decision === false) throw forbidden();
      if (decision !== true) {
        ops = ops.filter((o) => decision.parameters.includes(o.name));
        if (ops.length === 0) throw forbidden();
      }
    }
    this.#checkNodes(request.nodes);
    const valid: ValidOperation[] = [];
    for (const node of request.nodes ?? [undefined])
      for (const op of ops) valid.push(validateOperation(this.#d.params, op, node, codec, family));
    for (const v of valid) await this.#apply(v, { ...ctx, node: v.node });
  }

  async #apply(op: ValidOperation, context: ControlContext): Promise<void> {
    const { spec } = op.state;
    if (spec.apply) await spec.apply(op.value, context);
    op.state.value = op.value;
    if (!spec.apply && this.#d.fields.get(spec.name, spec.node)) {
      try {
        this.#d.onSet(spec.name, op.value, spec.node);
      } catch (err) {
        this.#d.logger.warn(`IoT agent: parameter ${spec.name} does not fit its field`, toError(err));
      }
    }
    for (const l of [...this.#controlListeners]) l({ name: spec.name, value: op.value, context });
  }
}
