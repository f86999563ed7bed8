// examples/iot runs briefly against the harness's servers: a fleet of c2s agents, the monitor
// with its alert rules, the dashboard; its summary tells what the monitor observed.
import { describeServers } from '@xmppbus/testing';
import { expect, it } from 'vitest';
import { IOT_MONITOR, iotExampleUsers, runIotExample } from '../examples/iot/main.js';

const AGENTS = 4;

describeServers(
  'examples/iot',
  (server, kind) => {
    it(`runs the fleet, raises and clears alerts, delivers a command [${kind}]`, async () => {
      const lines: string[] = [];
      let url = '';
      const summary = await runIotExample({
        server: server(),
        agents: AGENTS,
        duration: 6_000,
        speed: 4,
        write: (line) => lines.push(line),
        onDashboard: (u) => (url = u),
        timeout: 30_000,
      });
      expect(summary.url).toBe(url);
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      expect(summary.agents).toBe(AGENTS);
      expect(summary.online).toBe(AGENTS);
      expect(summary.notifications).toBeGreaterThan(AGENTS);
      // The story: a heat wave on thermostat 0 and door 1 dropping off and coming back.
      expect(summary.alertsRaised).toEqual(expect.arrayContaining(['too-hot agent00.temperature', 'offline agent01']));
      expect(summary.alertsCleared).toEqual(expect.arrayContaining(['too-hot agent00.temperature', 'offline agent01']));
      expect(summary.commandsDelivered).toContain('agent00 heating=false');
      expect(summary.alertEventsPublished).toBeGreaterThanOrEqual(2);
      expect(lines).toEqual(summary.transcript);
      expect(lines.join('\n')).toContain(`dashboard ${url}`);
    });
  },
  { users: iotExampleUsers(AGENTS), admins: [`${IOT_MONITOR}@localhost`] },
);
