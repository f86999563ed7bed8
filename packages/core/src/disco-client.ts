/**
 * Asking another entity what it supports (XEP-0030 disco#info): the one query behind "does this
 * peer take batches?" (rpc, messaging) and "is this instance serving the contract?" (rpc).
 */
import type { WaitOptions } from './abort.js';
import { NS_DISCO_INFO } from './disco.js';
import type { IqCaller } from './iq.js';
import { childElements, findChild, localName, xml } from './xml.js';

/** What `fetchFeatures` needs of a session (a `Session` qualifies). */
export interface DiscoRequester {
  readonly caller: IqCaller;
}

/**
 * The `var`s of the `<feature/>`s `to` lists in its disco#info. Rejects as `caller.request` does:
 * the peer's StanzaError, TimeoutError, or the abort reason.
 */
export async function fetchFeatures(
  session: DiscoRequester,
  to: string,
  options: WaitOptions = {},
): Promise<Set<string>> {
  const iq = xml('iq', { type: 'get', to }, xml('query', { xmlns: NS_DISCO_INFO }));
  const reply = await session.caller.request(iq, options);
  const features = new Set<string>();
  const query = findChild(reply, 'query', NS_DISCO_INFO);
  if (query === undefined) return features;
  for (const f of childElements(query)) {
    const name = f.attrs['var'];
    if (localName(f) === 'feature' && typeof name === 'string') features.add(name);
  }
  return features;
}
