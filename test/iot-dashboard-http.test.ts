import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { Dashboard, type FleetSource } from '@xmppbus/iot';

const controls: string[] = [];
const source: FleetSource = {
  snapshot: () => ({ at: 0, agents: [], alerts: [] }),
  subscribe: () => () => undefined,
  control: (agent, parameter) => {
    controls.push(`${agent} ${parameter}`);
    return Promise.resolve();
  },
};

function post(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(new URL('/api/control', url), { method: 'POST', headers }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.end(JSON.stringify({ agent: 'a@iot.test/d', parameter: 'SetPoint', value: 21 }));
  });
}

let dashboard: Dashboard | undefined;
afterEach(async () => {
  await dashboard?.close();
  dashboard = undefined;
  controls.length = 0;
});

describe('Dashboard: commands', () => {
  it('refuses a foreign or opaque Origin with 403 and takes its own', async () => {
    dashboard = new Dashboard({ source });
    const url = await dashboard.start();
    const json = { 'Content-Type': 'application/json' };
    expect(await post(url, { ...json, Origin: 'null' })).toBe(403);
    expect(await post(url, { ...json, Origin: 'http://evil.example' })).toBe(403);
    expect(await post(url, { ...json, Origin: 'not a url' })).toBe(403);
    expect(controls).toEqual([]);
    expect(await post(url, { ...json, Origin: url.replace(/\/$/, '') })).toBe(200);
    expect(controls).toEqual(['a@iot.test/d SetPoint']);
  });
});
