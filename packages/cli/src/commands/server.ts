/** `xmppbus server …`: placeholder until @xmppbus/server's API is wired. */
import type { Command } from 'commander';
import type { Wrap } from '../program.js';

export function registerServer(program: Command, _wrap: Wrap): void {
  program.command('server').description('run a local Prosody or ejabberd for development and CI');
}
