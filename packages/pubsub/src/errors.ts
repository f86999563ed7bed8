/**
 * Pub/sub failures are stanza errors; two get their own class because users act on them:
 * `PubSubForbiddenError` (missing permission, with what to change on which server) and
 * `PreconditionNotMetError` (publish-options did not match the node's configuration).
 */
import { ServiceUnavailableError, StanzaError, type StanzaErrorInit, type XmppBusErrorOptions } from '@xmppbus/core';
import { NS_PUBSUB_ERRORS } from './ns.js';

export type PubSubOperation =
  | 'create'
  | 'configure'
  | 'delete'
  | 'purge'
  | 'publish'
  | 'retract'
  | 'subscribe'
  | 'unsubscribe'
  | 'items'
  | 'subscriptions'
  | 'options'
  | 'affiliations'
  | 'discover';

const HINTS: Partial<Record<PubSubOperation, string>> = {
  create:
    'node creation is restricted: on Prosody add this JID to `admins`; on ejabberd allow it in mod_pubsub `access_createnode`',
  publish:
    "publishing needs the owner or publisher affiliation: have the node's owner call pubsub.setAffiliations(node, { [jid]: 'publisher' }) (or use ensurePublishers)",
  retract: 'retracting needs the owner or publisher affiliation on the node',
  configure: 'only an owner of the node may read or change its configuration',
  delete: 'only an owner of the node may delete it',
  purge: 'only an owner of the node may purge it',
  affiliations: 'only an owner of the node may manage affiliations',
  subscribe: "the node's access model does not let this JID subscribe",
  items: "the node's access model does not let this JID retrieve items",
};

/** A pub/sub request was refused for lack of permission (`forbidden`, `not-authorized`, `not-allowed`). */
export class PubSubForbiddenError extends StanzaError {
  readonly operation: PubSubOperation;
  readonly node: string | undefined;
  /** The JID that asked. */
  readonly actor: string;

  constructor(
    init: StanzaErrorInit & { operation: PubSubOperation; node: string | undefined; actor: string },
    options?: XmppBusErrorOptions,
  ) {
    const { operation, node, actor, ...rest } = init;
    super(rest, { retryable: false, ...options });
    this.operation = operation;
    this.node = node;
    this.actor = actor;
    const hint = HINTS[operation];
    this.message =
      `${operation}${node !== undefined ? ` on node '${node}'` : ''} refused for ${actor}: ${rest.condition}` +
      `${rest.text ? ` (${rest.text})` : ''}${hint ? ` — ${hint}` : ''}`;
  }
}

/** Publish-options preconditions did not match the node (`conflict` + `precondition-not-met`). */
export class PreconditionNotMetError extends StanzaError {
  readonly node: string;
  constructor(init: StanzaErrorInit & { node: string }, options?: XmppBusErrorOptions) {
    const { node, ...rest } = init;
    super(rest, { retryable: false, ...options });
    this.node = node;
    this.message = `publish-options precondition not met on node '${node}'${rest.text ? `: ${rest.text}` : ''}`;
  }
}

/** The pub/sub-specific condition (`<precondition-not-met/>`, `<unsupported feature='…'/>`, …), if any. */
export function pubsubCondition(err: StanzaError): string | undefined {
  const app = err.application;
  if (!app || app.attrs['xmlns'] !== NS_PUBSUB_ERRORS) return undefined;
  return app.name;
}

function initOf(e: StanzaError): StanzaErrorInit {
  const init: StanzaErrorInit = { condition: e.condition, type: e.type };
  if (e.text !== undefined) init.text = e.text;
  if (e.application) init.application = e.application;
  if (e.by !== undefined) init.by = e.by;
  return init;
}

/** Gives permission and precondition failures their own class; everything else passes through. */
export function translateError(
  err: unknown,
  operation: PubSubOperation,
  node: string | undefined,
  actor: string,
): unknown {
  // ejabberd with s2s off answers `forbidden` "Access denied by service policy" when the service
  // is not routed; core already made that a ServiceUnavailableError: keep it.
  if (!(err instanceof StanzaError) || err instanceof ServiceUnavailableError) return err;
  const app = pubsubCondition(err);
  if (app === 'precondition-not-met' || (err.condition === 'conflict' && app === 'precondition-not-met')) {
    return new PreconditionNotMetError({ ...initOf(err), node: node ?? '' }, { cause: err });
  }
  if (
    err.condition === 'forbidden' ||
    err.condition === 'not-authorized' ||
    (err.condition === 'not-allowed' && app !== 'closed-node')
  ) {
    return new PubSubForbiddenError({ ...initOf(err), operation, node, actor }, { cause: err });
  }
  return err;
}
