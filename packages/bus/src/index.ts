// The bus
export { createBus, Bus } from './bus.js';
export type { CreateBusOptions, BusHealth, Startable } from './bus.js';
export type { BusStatus, BusStatusListener } from './status.js';
export { handleSignals } from './signals.js';
export type { HandleSignalsOptions } from './signals.js';

// Configuration
export { BUS_CONFIG_SCHEMA } from './config-schema.js';
export type {
  BusConfig,
  TransportConfig,
  TlsConfig,
  RetryConfig,
  AccessConfig,
  RpcConfig,
  PubSubConfig,
  MessagingConfig,
  SqliteStoreConfig,
  ServerSection,
  SecretInput,
  LogLevel,
  LogFormat,
} from './config-schema.js';
export { loadConfig, BusConfigError, REDACTED } from './config.js';
export type { BusConfigInput, LoadConfigOptions, LoadedConfig, ConfigIssue } from './config.js';
export { ENV_BINDINGS } from './env.js';
export type { Env, EnvBinding, EnvType } from './env.js';

// Logging
export { createLogger, pinoLogger } from './logger.js';
export type { StderrLoggerOptions, PinoLike } from './logger.js';
