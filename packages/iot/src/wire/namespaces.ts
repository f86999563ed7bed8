/**
 * Namespaces of both IoT dialects (docs/protocol.md §7). The deployed vocabulary exists under
 * three names (`urn:nf:`, the newer `urn:nfi:`, and the older `urn:ieee:`); an agent accepts all
 * and answers under the one each request used.
 */
import type { Dialect } from '../types.js';

export const NS_SD_NF = 'urn:nf:iot:sd:1.0';
export const NS_EVENTS_NF = 'urn:nf:iot:events:1.0';
export const NS_CTR_NF = 'urn:nf:iot:ctr:1.0';
export const NS_SD_NFI = 'urn:nfi:iot:sd:1.0';
export const NS_EVENTS_NFI = 'urn:nfi:iot:events:1.0';
export const NS_CTR_NFI = 'urn:nfi:iot:ctr:1.0';
export const NS_SD_IEEE = 'urn:ieee:iot:sd:1.0';
export const NS_EVENTS_IEEE = 'urn:ieee:iot:events:1.0';
export const NS_CTR_IEEE = 'urn:ieee:iot:ctr:1.0';
export const NS_SD_LEGACY = 'urn:xmpp:iot:sensordata';
export const NS_EVENTS_LEGACY = 'urn:xmpp:iot:events';
export const NS_CTR_LEGACY = 'urn:xmpp:iot:control';

/** The area a namespace belongs to, its dialect, and the sibling namespaces of the same family. */
export interface NamespaceFamily {
  readonly dialect: Dialect;
  readonly sd: string;
  readonly events: string;
  readonly ctr: string;
}

const NF: NamespaceFamily = { dialect: 'nf', sd: NS_SD_NF, events: NS_EVENTS_NF, ctr: NS_CTR_NF };
const NFI: NamespaceFamily = { dialect: 'nf', sd: NS_SD_NFI, events: NS_EVENTS_NFI, ctr: NS_CTR_NFI };
const IEEE: NamespaceFamily = { dialect: 'nf', sd: NS_SD_IEEE, events: NS_EVENTS_IEEE, ctr: NS_CTR_IEEE };
const LEGACY: NamespaceFamily = { dialect: 'legacy', sd: NS_SD_LEGACY, events: NS_EVENTS_LEGACY, ctr: NS_CTR_LEGACY };

/** Default family per dialect for outbound requests. */
export const FAMILY: Readonly<Record<Dialect, NamespaceFamily>> = { nf: NF, legacy: LEGACY };

const BY_NS = new Map<string, NamespaceFamily>();
for (const f of [NF, NFI, IEEE, LEGACY]) for (const ns of [f.sd, f.events, f.ctr]) BY_NS.set(ns, f);

/** The family of an IoT namespace, or undefined for anything else. */
export function familyOf(ns: string | undefined): NamespaceFamily | undefined {
  return ns === undefined ? undefined : BY_NS.get(ns);
}

export const SD_NAMESPACES: readonly string[] = [NF.sd, NFI.sd, IEEE.sd, LEGACY.sd];
export const EVENTS_NAMESPACES: readonly string[] = [NF.events, NFI.events, IEEE.events, LEGACY.events];
export const CTR_NAMESPACES: readonly string[] = [NF.ctr, NFI.ctr, IEEE.ctr, LEGACY.ctr];
