import { silentLogger, xml } from '@xmppbus/core';
import { describe, expect, it } from 'vitest';
import { NS_PUBSUB_EVENT } from './ns.js';
import { NotificationRouter } from './notifications.js';
import type { PubSubEvent } from './events.js';

function notification(to: string): ReturnType<typeof xml> {
  return xml(
    'message',
    { from: 'pubsub.example.test', to },
    xml('event', { xmlns: NS_PUBSUB_EVENT }, xml('items', { node: 'n1' }, xml('item', { id: 'i1' }))),
  );
}

describe('NotificationRouter', () => {
  it('matches a subscriber JID case-insensitively in its local and domain parts (servers lowercase them)', () => {
    const router = new NotificationRouter('pubsub.example.test', silentLogger);
    const seen: PubSubEvent[] = [];
    router.onNode('n1', (e) => seen.push(e), 'Orders@Example.test');
    router.dispatch(notification('orders@example.test'));
    router.dispatch(notification('orders@example.test/r1'));
    expect(seen).toHaveLength(2);
  });

  it('keeps resources case-sensitive and removes a listener by the same key', () => {
    const router = new NotificationRouter('pubsub.example.test', silentLogger);
    const seen: PubSubEvent[] = [];
    const off = router.onNode('n1', (e) => seen.push(e), 'svc.example.test/Worker');
    router.dispatch(notification('SVC.example.test/worker'));
    expect(seen).toHaveLength(0);
    router.dispatch(notification('SVC.example.test/Worker'));
    expect(seen).toHaveLength(1);
    off();
    router.dispatch(notification('svc.example.test/Worker'));
    expect(seen).toHaveLength(1);
  });
});
