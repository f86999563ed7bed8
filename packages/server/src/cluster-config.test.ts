import { ConfigError } from '@xmppbus/core';
import { describe, expect, it } from 'vitest';

import {
  EPMD_MODULE,
  EPMD_MODULE_SOURCE,
  ctlArgs,
  domainBalancingYaml,
  epmdArgs,
  parseListCluster,
  planNodes,
} from './cluster-config.js';

describe('cluster config', () => {
  it('plans node names and fixed distribution ports per run', () => {
    const plans = planNodes('ab12', [20001, 20002]);
    expect(plans).toEqual([
      { name: 'xmppbus-ab12-1', node: 'xmppbus-ab12-1@localhost', distPort: 20001 },
      { name: 'xmppbus-ab12-2', node: 'xmppbus-ab12-2@localhost', distPort: 20002 },
    ]);
    expect(() => planNodes('ab12', [20001, 20001])).toThrow(ConfigError);
    expect(() => planNodes('A B', [1])).toThrow(ConfigError);
  });

  it('gives every VM the epmd module and the whole name → port table', () => {
    const args = epmdArgs('/tmp/x', planNodes('r', [1111, 2222]));
    expect(args).toEqual([
      '-pa',
      '/tmp/x',
      '-epmd_module',
      EPMD_MODULE,
      '-xmppbus_dist_ports',
      'xmppbus-r-1=1111,xmppbus-r-2=2222',
    ]);
  });

  it('the epmd module reads exactly that flag and keeps erl_epmd for the local node', () => {
    expect(EPMD_MODULE_SOURCE).toContain(`-module(${EPMD_MODULE}).`);
    expect(EPMD_MODULE_SOURCE).toContain('init:get_argument(xmppbus_dist_ports)');
    expect(EPMD_MODULE_SOURCE).toContain('listen_port_please(Name, Host) -> erl_epmd:listen_port_please(Name, Host).');
    expect(EPMD_MODULE_SOURCE).toContain('{port, Port, 6}');
  });

  it('a ctl VM is hidden, never listens, never starts epmd, and targets one node', () => {
    const [n1] = planNodes('r', [1111, 2222]);
    const args = ctlArgs({
      target: n1!,
      cookie: 'c00k1e',
      epmd: ['-pa', '/d'],
      ctlName: 'xmppbus-r-ctl1',
      command: ['join_cluster', 'xmppbus-r-2@localhost'],
    });
    const after = (flag: string): string | undefined => args[args.indexOf(flag) + 1];
    expect(after('-sname')).toBe('xmppbus-r-ctl1@localhost');
    expect(args).toContain('-hidden');
    expect(after('-dist_listen')).toBe('false');
    expect(after('-start_epmd')).toBe('false');
    expect(after('-erl_epmd_port')).toBe('1111');
    expect(after('-setcookie')).toBe('c00k1e');
    expect(args.slice(args.indexOf('-extra'))).toEqual([
      '-extra',
      'xmppbus-r-1@localhost',
      'join_cluster',
      'xmppbus-r-2@localhost',
    ]);
  });

  it('writes domain_balancing with component_number always set', () => {
    expect(domainBalancingYaml({})).toBe('');
    const yml = domainBalancingYaml({ 'Orders.localhost': { type: 'random', connections: 2 } });
    expect(yml).toContain('domain_balancing:\n  "orders.localhost":\n    type: random\n    component_number: 2\n');
    expect(() => domainBalancingYaml({ x: { type: 'random', connections: 0 } })).toThrow(ConfigError);
  });

  it('parses list_cluster output, quoted or not', () => {
    expect(parseListCluster("xmppbus-r-2@localhost\n'xmppbus-r-1@localhost'\n\n")).toEqual([
      'xmppbus-r-1@localhost',
      'xmppbus-r-2@localhost',
    ]);
    expect(parseListCluster('Error: {no_ping,x}')).toEqual([]);
  });
});
