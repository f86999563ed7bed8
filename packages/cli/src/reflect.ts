/**
 * Finding a peer's contract by name through schema reflection (`urn:xmppbus:schema:1`, see
 * docs/protocol.md): the CLI has no TypeScript contracts, so it asks the service for the JSON
 * Schemas and builds runtime contracts from them; the codec then encodes and validates JSON input
 * exactly as the service's own contract does.
 */
import {
  StanzaError,
  fetchSchemas,
  type ContractDescriptor,
  type MessageDescriptor,
  type MethodDescriptor,
  type Session,
  type WaitOptions,
} from '@xmppbus/core';
import { UsageError } from './errors.js';
import { contractLabel, type ContractRef } from './input.js';

/** The peer's contracts of `kind` matching `ref`, with a clear error when reflection is not available. */
export async function reflected<K extends ContractDescriptor['kind']>(
  session: Session,
  to: string,
  kind: K,
  ref: ContractRef | undefined,
  options: WaitOptions,
): Promise<Extract<ContractDescriptor, { kind: K }>[]> {
  try {
    const list = await fetchSchemas(session, to, {
      ...options,
      kind,
      ...(ref?.ns !== undefined && { ns: ref.ns }),
      ...(ref !== undefined && { name: ref.name }),
    });
    return list.filter((d): d is Extract<ContractDescriptor, { kind: K }> => d.kind === kind);
  } catch (err) {
    if (err instanceof StanzaError && (err.condition === 'feature-not-implemented' || isNoHandler(err)))
      throw new StanzaError(
        {
          condition: err.condition,
          type: err.type,
          text: `${to} does not describe its contracts (schema reflection, urn:xmppbus:schema:1): use --xml${err.text ? ` [${err.text}]` : ''}`,
        },
        { cause: err },
      );
    throw err;
  }
}

/** A service answering reflection with "no handler" (it registered no contract yet, or is not xmppbus). */
function isNoHandler(err: StanzaError): boolean {
  return err.condition === 'service-unavailable' && /urn:xmppbus:schema:1|no handler/i.test(err.text ?? '');
}

/** Exactly one method of `to` named by `ref`, or a UsageError listing what there is. */
export async function findMethod(
  session: Session,
  to: string,
  ref: ContractRef,
  options: WaitOptions,
): Promise<MethodDescriptor> {
  return one(await reflected(session, to, 'method', ref, options), to, 'method', ref, () =>
    reflected(session, to, 'method', undefined, options),
  );
}

/** The message contract `ref` that `to` handles, or undefined when `to` does not describe it. */
export async function findMessage(
  session: Session,
  to: string,
  ref: ContractRef,
  options: WaitOptions,
): Promise<MessageDescriptor | undefined> {
  const found = await reflected(session, to, 'message', ref, options);
  if (found.length === 0) return undefined;
  return one(found, to, 'message', ref, () => Promise.resolve(found));
}

async function one<D extends ContractDescriptor>(
  found: D[],
  to: string,
  kind: string,
  ref: ContractRef,
  all: () => Promise<D[]>,
): Promise<D> {
  if (found.length === 1) return found[0]!;
  if (found.length > 1)
    throw new UsageError(
      `${kind} '${ref.name}' of ${to} is ambiguous: ${found.map((d) => contractLabel(d)).join(', ')} (name it ns#name)`,
    );
  const known = (await all()).map((d) => contractLabel(d));
  throw new UsageError(
    `${to} has no ${kind} ${contractLabel(ref)}${known.length > 0 ? ` (it has: ${known.join(', ')})` : ` (it describes no ${kind}s)`}`,
  );
}
