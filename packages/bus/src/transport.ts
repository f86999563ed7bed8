/**
 * Builds the configured transport: a component (XEP-0114) or a client (c2s) connection. The
 * secret is resolved at every connection attempt (a `passwordFile` is read then, so a rotated
 * secret is picked up on reconnect), and never logged.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ConfigError, type Logger, type Transport } from '@xmppbus/core';
import { clientTransport } from '@xmppbus/transport-client';
import { componentTransport } from '@xmppbus/transport-component';
import { BusConfigError, secretOf } from './config.js';
import type { TransportConfig } from './config-schema.js';

export interface ConnectOptions {
  logger: Logger;
  cwd: string;
  signal?: AbortSignal | undefined;
}

export async function connectTransport(config: TransportConfig, options: ConnectOptions): Promise<Transport> {
  const password = secretOf(config, options.cwd);
  const ca = config.tls?.caFile ? await readCa(resolve(options.cwd, config.tls.caFile)) : undefined;
  const common = {
    service: config.service,
    domain: config.domain,
    password,
    logger: options.logger,
    ...(config.timeout !== undefined && { timeout: config.timeout }),
    ...(config.reconnect !== undefined && { reconnect: config.reconnect }),
    ...(config.maxQueue !== undefined && { maxQueue: config.maxQueue }),
    ...(options.signal && { signal: options.signal }),
  };
  const tls = config.tls && {
    ...(ca !== undefined && { ca }),
    ...(config.tls.servername !== undefined && { servername: config.tls.servername }),
    ...(config.tls.rejectUnauthorized !== undefined && { rejectUnauthorized: config.tls.rejectUnauthorized }),
  };
  if (config.kind === 'component') {
    for (const key of ['username', 'resource', 'mechanism', 'allowPlainWithoutTls'] as const)
      if (config[key] !== undefined)
        throw new BusConfigError([{ path: `transport.${key}`, message: 'applies to client transports only' }]);
    if (config.tls?.required !== undefined)
      throw new BusConfigError([{ path: 'transport.tls.required', message: 'applies to client transports only' }]);
    return componentTransport({
      ...common,
      ...(tls && { tls }),
      ...(config.endpoints !== undefined && { endpoints: config.endpoints }),
    });
  }
  if (config.endpoints !== undefined)
    throw new BusConfigError([{ path: 'transport.endpoints', message: 'applies to component transports only' }]);
  if (config.username === undefined)
    throw new BusConfigError([{ path: 'transport.username', message: 'is required for a client transport' }]);
  return clientTransport({
    ...common,
    username: config.username,
    ...(config.resource !== undefined && { resource: config.resource }),
    ...(config.mechanism !== undefined && { mechanism: config.mechanism }),
    ...(config.allowPlainWithoutTls !== undefined && { allowPlainWithoutTls: config.allowPlainWithoutTls }),
    ...(config.tls && { tls: { ...tls, ...(config.tls.required !== undefined && { required: config.tls.required }) } }),
  });
}

async function readCa(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`transport.tls.caFile ${path}: ${String((err as NodeJS.ErrnoException).code ?? err)}`, {
      cause: err,
    });
  }
}
