/** XEP-0060 / XEP-0004 / XEP-0030 namespaces and our own. */
export const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
export const NS_PUBSUB_OWNER = 'http://jabber.org/protocol/pubsub#owner';
export const NS_PUBSUB_EVENT = 'http://jabber.org/protocol/pubsub#event';
export const NS_PUBSUB_ERRORS = 'http://jabber.org/protocol/pubsub#errors';
export const NS_PUBSUB_NODE_CONFIG = 'http://jabber.org/protocol/pubsub#node_config';
export const NS_PUBSUB_PUBLISH_OPTIONS = 'http://jabber.org/protocol/pubsub#publish-options';
export const NS_PUBSUB_SUBSCRIBE_OPTIONS = 'http://jabber.org/protocol/pubsub#subscribe_options';
export const NS_PUBSUB_META_DATA = 'http://jabber.org/protocol/pubsub#meta-data';
export const NS_DATA = 'jabber:x:data';
export const NS_DELAY = 'urn:xmpp:delay';
export const NS_RSM = 'http://jabber.org/protocol/rsm';
/** Our own protocol for competing-consumer groups (dispatch from the group leader to members). */
export const NS_XMPPBUS_PUBSUB = 'urn:xmppbus:pubsub:1';
/** Event batches: several events of one contract in one pub/sub item (docs/protocol.md §4). */
export const NS_EVENTS_BATCH = 'urn:xmppbus:events:batch:1';
