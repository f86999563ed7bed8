// The live fleet dashboard in a real headless Chromium (Debian's, driven by puppeteer-core),
// against real c2s agents observed by a Monitor through Prosody and ejabberd: the page shows
// the agents, a value change, an alert raised and cleared, an agent going offline, and a
// control button that changes an agent's value. A screenshot goes to test/artifacts/.
import { mkdirSync } from 'node:fs';
import { AccessPolicy, ManualClock, Session } from '@xmppbus/core';
import { AlertEvent, Dashboard, IotClient, Monitor, iotAccessRules } from '@xmppbus/iot';
import { Messenger } from '@xmppbus/messaging';
import { PubSub } from '@xmppbus/pubsub';
import { decode } from '@xmppbus/schema';
import { describeServers, waitFor } from '@xmppbus/testing';
import { clientTransport } from '@xmppbus/transport-client';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterEach, expect, it } from 'vitest';
import { agentName, fleetScheduler, startAgent, startFleet, type SimAgent } from '../examples/iot/fleet.js';

const AGENTS = 4;
const PASSWORD = 'password';
const MONITOR = 'monitor@localhost';
const ALERT_NODE = 'iot-alerts';
const DEADLINE = 30_000;
const ARTIFACTS = new URL('./artifacts/', import.meta.url);

/** The little of the DOM the page functions below use (they run in the browser; no DOM lib here). */
interface PageElement {
  getAttribute(name: string): string | null;
}
declare const document: {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): { length: number };
  getElementById(id: string): PageElement | null;
};

const users: [string, string][] = [
  ['monitor', PASSWORD],
  ...Array.from({ length: AGENTS }, (_, i): [string, string] => [agentName('agent', i), PASSWORD]),
];

describeServers(
  'iot dashboard (headless chromium)',
  (server, kind) => {
    const cleanups: (() => Promise<unknown>)[] = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
    });

    async function openPage(url: string): Promise<{ page: Page; pageErrors: string[] }> {
      const browser: Browser = await puppeteer.launch({
        executablePath: '/usr/bin/chromium',
        args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
      });
      cleanups.push(() => browser.close());
      const page: Page = await browser.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      await page.setViewport({ width: 1280, height: 900 }); // the screenshot's size
      await page.goto(url, { waitUntil: 'domcontentloaded' });
      return { page, pageErrors };
    }

    async function monitorSession(): Promise<Session> {
      const srv = server();
      const transport = await clientTransport({
        service: srv.c2sService(),
        domain: srv.domain,
        username: 'monitor',
        password: PASSWORD,
        resource: 'dashboard',
        timeout: DEADLINE,
      });
      const session = new Session({ transport, access: new AccessPolicy({ rules: iotAccessRules() }) });
      cleanups.push(() => session.close());
      return session;
    }

    it(`shows agents, values, alerts, offline agents and sends commands [${kind}]`, async () => {
      const srv = server();
      // The agents' clock is manual: each simulated second is one step, so values carry
      // timestamps a second apart (sparklines spread over time) without waiting for them.
      const clock = new ManualClock(Date.now() - 120_000);
      const fleet: SimAgent[] = await startFleet({
        server: srv,
        agents: AGENTS,
        owner: MONITOR,
        password: PASSWORD,
        clock,
      });
      cleanups.push(() => Promise.all(fleet.map((a) => a.close())));
      const [thermo, door, meter] = [fleet[0]!, fleet[1]!, fleet[2]!];
      expect([thermo.model.kind, door.model.kind, meter.model.kind]).toEqual(['thermostat', 'door', 'meter']);

      const session = await monitorSession();
      const pubsub = new PubSub({ session, service: srv.pubsubService });
      const monitor = new Monitor({
        session,
        agents: fleet.map((a) => a.monitored),
        alerts: [
          { kind: 'threshold', name: 'too-hot', field: 'temperature', above: 30, hysteresis: 1, severity: 'critical' },
          { kind: 'offline', name: 'offline' },
        ],
        publishAlerts: { pubsub, node: ALERT_NODE },
        timeout: DEADLINE,
      });
      cleanups.push(() => monitor.close());
      await session.start({ timeout: DEADLINE });
      await pubsub.ensureNode(ALERT_NODE, { persistItems: true, maxItems: 100 }, { timeout: DEADLINE });
      await monitor.start({ timeout: DEADLINE });
      // Online, subscribed at every agent, and each agent's current values in.
      await waitFor(
        () =>
          monitor.stats.online === AGENTS &&
          fleet.every((a) => a.agent.subscriptionCount === 1) &&
          monitor.stats.notifications >= AGENTS,
        {
          timeout: DEADLINE,
          what: 'every agent online and observed',
        },
      );
      // A minute of history for the sparklines.
      for (let s = 0; s < 60; s++) {
        clock.advance(1000);
        for (const a of fleet) a.step(1);
      }
      const historyOf = (a: SimAgent, field: string): number =>
        monitor
          .snapshot()
          .agents.find((v) => v.jid === a.jid)
          ?.fields.find((f) => f.name === field)?.history.length ?? 0;
      // (Doors report only when they open or close.)
      const moving = fleet.filter((a) => a.model.kind !== 'door');
      await waitFor(() => moving.every((a) => historyOf(a, a.model.fields()[0]!.name) >= 60), {
        timeout: DEADLINE,
        what: 'a minute of history per agent',
      }).catch((err: Error) => {
        const got = fleet.map((a) => historyOf(a, a.model.fields()[0]!.name)).join(', ');
        throw new Error(`${err.message}: ${got}; ${JSON.stringify(monitor.stats)}`);
      });

      const dashboard = new Dashboard({ source: monitor, title: `xmppbus fleet · ${kind}` });
      cleanups.push(() => dashboard.close());
      const url = await dashboard.start();
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);

      const { page, pageErrors } = await openPage(url);
      const opts = { timeout: DEADLINE, polling: 100 } as const;

      // N agents, all online, values with units and sparklines drawn by uPlot.
      await page.waitForFunction(
        (n) =>
          document.querySelectorAll('[data-agent][data-presence="online"]').length === n &&
          document.getElementById('connection')?.getAttribute('data-connection') === 'open',
        opts,
        AGENTS,
      );
      const thermoSel = `article[data-agent="${thermo.jid}"]`;
      expect(await page.$eval(`${thermoSel} [data-field="temperature"] .unit`, (e) => e.textContent)).toBe('°C');
      expect(await page.$$eval(`${thermoSel} .uplot canvas`, (c) => c.length)).toBeGreaterThan(0);

      // A value change appears.
      clock.advance(1000);
      thermo.report([{ name: 'temperature', value: 23.45, unit: '°C' }]);
      await page.waitForFunction(
        (sel) => document.querySelector(`${sel} [data-field="temperature"]`)?.getAttribute('data-value') === '23.45',
        opts,
        thermoSel,
      );

      // An alert appears (above 30 °C) and clears (at or below 29 °C: hysteresis 1).
      clock.advance(1000);
      thermo.report([{ name: 'temperature', value: 31.5, unit: '°C' }]);
      await page.waitForFunction(
        (jid) => document.querySelector(`[data-alert][data-kind="threshold"][data-agent="${jid}"]`) !== null,
        opts,
        thermo.jid,
      );
      expect(await page.$eval('[data-alert][data-kind="threshold"] .msg', (e) => e.textContent)).toBe(
        'temperature 31.5 °C above 30 °C',
      );
      clock.advance(1000);
      thermo.report([{ name: 'temperature', value: 29.5, unit: '°C' }]); // inside the hysteresis band: still raised
      await page.waitForFunction(
        (sel) => document.querySelector(`${sel} [data-field="temperature"]`)?.getAttribute('data-value') === '29.5',
        opts,
        thermoSel,
      );
      expect(await page.$('[data-alert][data-kind="threshold"]')).not.toBeNull();
      clock.advance(1000);
      thermo.report([{ name: 'temperature', value: 28.7, unit: '°C' }]);
      await page.waitForFunction(() => document.querySelector('[data-alert][data-kind="threshold"]') === null, opts);

      // The control button changes the agent's value: the agent's handler applies it, and the
      // page shows the value the agent then reports.
      const meterSel = `article[data-agent="${meter.jid}"]`;
      const before = meter.model.fields().find((f) => f.name === 'relay')?.value;
      expect(before).toBe(true);
      await page.click(`${meterSel} [data-control="relay"] button`);
      await waitFor(() => meter.applied.length > 0, { timeout: DEADLINE, what: 'the command at the agent' });
      expect(meter.applied).toEqual([{ parameter: 'relay', value: false }]);
      await page.waitForFunction(
        (sel) =>
          document.querySelector(`${sel} [data-field="relay"]`)?.getAttribute('data-value') === 'false' &&
          document.querySelector(`${sel} [data-field="power"]`)?.getAttribute('data-value') === '0' &&
          document.querySelector(`${sel} [data-control="relay"] .cstatus`)?.getAttribute('data-state') === 'ok',
        opts,
        meterSel,
      );

      // Keep a live alert on screen for the screenshot: the door agent goes offline.
      const doorSel = `article[data-agent="${door.jid}"]`;
      await door.close();
      await page.waitForFunction(
        (sel, jid) =>
          document.querySelector(sel)?.getAttribute('data-presence') === 'offline' &&
          document.querySelector(`[data-alert][data-kind="offline"][data-agent="${jid}"]`) !== null,
        opts,
        doorSel,
        door.jid,
      );
      expect(await page.$eval(`${doorSel} .badge`, (e) => e.textContent)).toBe('offline');
      // And one threshold alert raised again, so the shot shows both kinds.
      clock.advance(1000);
      thermo.report([{ name: 'temperature', value: 32.1, unit: '°C' }]);
      await page.waitForFunction(() => document.querySelector('[data-alert][data-kind="threshold"]') !== null, opts);

      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: new URL(`iot-dashboard-${kind}.png`, ARTIFACTS).pathname, fullPage: true });
      expect(pageErrors).toEqual([]);

      // The alert events reached the pub/sub node: the threshold alert's item holds its latest state.
      await monitor.drain({ timeout: DEADLINE });
      const items = await pubsub.items(ALERT_NODE, { timeout: DEADLINE });
      const events = items.flatMap((i) => (i.payload ? [{ id: i.id, ...decode(AlertEvent, i.payload) }] : []));
      const hot = events.find((e) => e.rule === 'too-hot');
      expect(hot).toMatchObject({ id: `too-hot/${thermo.jid}/temperature`, state: 'raised', value: '32.1' });
      expect(events.find((e) => e.rule === 'offline')).toMatchObject({ agent: door.jid, state: 'raised' });
      expect(monitor.stats.alertsRaised).toBe(3);
      expect(monitor.stats.alertsCleared).toBe(1);
      expect(monitor.stats.commandsSent).toBe(1);
    });

    it(`queues a command for an offline agent and shows it delivered once applied [${kind}]`, async () => {
      // A power meter with a messenger, so a QoS 2 command can wait for it in the monitor's outbox.
      const options = { server: server(), agents: AGENTS, owner: MONITOR, password: PASSWORD, messenger: true };
      const scheduler = fleetScheduler();
      const first = await startAgent({ ...options, scheduler }, 2);
      cleanups.push(() => first.close());
      expect(first.model.kind).toBe('meter');
      const relayOf = (a: SimAgent): unknown => a.model.fields().find((f) => f.name === 'relay')?.value;
      expect(relayOf(first)).toBe(true);

      const session = await monitorSession();
      const messenger = new Messenger({ session });
      cleanups.push(() => messenger.close());
      const client = new IotClient({ session, messenger, timeout: DEADLINE });
      // No controls configured: the meter marks its relay field writable.
      const monitor = new Monitor({ session, client, agents: [first.monitored], timeout: DEADLINE });
      cleanups.push(() => monitor.close());
      cleanups.push(() => client.close());
      await session.start({ timeout: DEADLINE });
      await monitor.start({ timeout: DEADLINE });
      await messenger.start({ timeout: DEADLINE });
      const view = () => monitor.snapshot().agents.find((a) => a.jid === first.jid);
      await waitFor(() => view()?.controls.some((c) => c.name === 'relay') === true, {
        timeout: DEADLINE,
        what: 'the relay control, learned from the writable field',
      });

      const dashboard = new Dashboard({ source: monitor, title: `xmppbus fleet · queued · ${kind}` });
      cleanups.push(() => dashboard.close());
      const { page, pageErrors } = await openPage(await dashboard.start());
      const opts = { timeout: DEADLINE, polling: 100 } as const;
      const sel = `article[data-agent="${first.jid}"]`;
      await page.waitForFunction(
        (s) => document.querySelector(`${s} [data-control="relay"] button`) !== null,
        opts,
        sel,
      );

      // The meter goes offline; the button now queues the command instead of failing.
      await first.close();
      await page.waitForFunction(
        (s) => document.querySelector(s)?.getAttribute('data-presence') === 'offline',
        opts,
        sel,
      );
      await page.click(`${sel} [data-control="relay"] button`);
      const status = `${sel} [data-control="relay"] .cstatus`;
      await page.waitForFunction(
        (s) => document.querySelector(s)?.getAttribute('data-state') === 'queued',
        opts,
        status,
      );
      expect(monitor.snapshot().commands).toMatchObject([
        { agent: first.jid, parameter: 'relay', value: false, state: 'queued' },
      ]);
      expect(monitor.stats).toMatchObject({ commandsQueued: 1, commandsDelivered: 0, commandsSent: 0 });

      // It logs in again (same meter): the command arrives once, is applied, and the page says delivered.
      const second = await startAgent({ ...options, scheduler, model: first.model }, 2);
      cleanups.push(() => second.close());
      await page.waitForFunction(
        (s, st) =>
          document.querySelector(`${s} [data-field="relay"]`)?.getAttribute('data-value') === 'false' &&
          document.querySelector(st)?.getAttribute('data-state') === 'delivered',
        opts,
        sel,
        status,
      );
      expect(second.applied).toEqual([{ parameter: 'relay', value: false }]);
      expect(monitor.snapshot().commands).toEqual([]);
      expect(monitor.stats).toMatchObject({ commandsQueued: 1, commandsDelivered: 1, commandsFailed: 0 });
      expect(pageErrors).toEqual([]);
    });
  },
  { users, admins: [MONITOR] },
);
