/**
 * Loads the bus configuration from up to three layers — a YAML/JSON file, `XMPPBUS_*`
 * environment variables and the object given to `createBus` — merged with the precedence
 * object > env > file (objects merge key by key; arrays and scalars replace), then validated
 * once against `BUS_CONFIG_SCHEMA`. Errors name the path and, for env values, the variable.
 */
import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '@xmppbus/core';
import { BUS_CONFIG_SCHEMA, type BusConfig, type SecretInput } from './config-schema.js';
import { readEnv, type Env } from './env.js';

/** What `createBus` takes: a config object, optionally naming a file to read first (lowest precedence). */
export interface BusConfigInput extends BusConfig {
  /** YAML or JSON file (default: `XMPPBUS_CONFIG`, else none). */
  file?: string;
}

export interface LoadConfigOptions {
  /** Environment to read `XMPPBUS_*` from (default `process.env`). */
  env?: Env;
  /** Directory relative file paths are resolved against (default `process.cwd()`). */
  cwd?: string;
}

export interface LoadedConfig {
  /** The effective config, secrets included: never log it. */
  readonly config: BusConfig;
  /** The same with secrets replaced by `'[redacted]'`, deeply frozen. */
  readonly redacted: Readonly<BusConfig>;
  /** The file read, if any. */
  readonly file: string | undefined;
  /** Things worth a warning (unknown `XMPPBUS_*` variables, a password in a file). */
  readonly warnings: readonly string[];
}

export interface ConfigIssue {
  /** Dotted path of the offending value, e.g. `transport.timeout` (`''` for the root). */
  readonly path: string;
  readonly message: string;
}

/** An invalid configuration; `issues` lists every problem with its path. */
export class BusConfigError extends ConfigError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    super(`invalid bus config: ${issues.map((i) => (i.path ? `${i.path} ${i.message}` : i.message)).join('; ')}`);
    this.issues = issues;
  }
}

export const REDACTED = '[redacted]';

const ajv = new Ajv({ allErrors: true, strict: true, logger: false });
const validate = ajv.compile<BusConfig>(BUS_CONFIG_SCHEMA);

type Layer = Record<string, unknown>;

export async function loadConfig(input: BusConfigInput = {}, options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new ConfigError('createBus: the config must be an object');
  const { file: fileOption, ...objectLayer } = input;
  const warnings: string[] = [];

  const fileName = fileOption ?? env['XMPPBUS_CONFIG'];
  const file = fileName ? resolve(cwd, fileName) : undefined;
  const fileLayer = file ? await readConfigFile(file) : {};
  const envLayer = readEnv(env);
  for (const name of envLayer.unknown) warnings.push(`unknown environment variable ${name} (ignored)`);
  if (file && hasSecret(fileLayer).password)
    warnings.push(`transport.password is set in ${file}; prefer passwordFile or XMPPBUS_PASSWORD`);

  const layers: Layer[] = [objectLayer as Layer, envLayer.config, fileLayer];
  const merged = layers.reduceRight<Layer>((acc, layer) => merge(acc, layer), {});
  pickSecret(merged, layers);

  // A password callback is code, not data: the schema checks the rest, the callback is put back.
  const transport = merged['transport'] as Layer | undefined;
  const callback = typeof transport?.['password'] === 'function' ? transport['password'] : undefined;
  if (callback) delete transport!['password'];
  if (!validate(merged)) {
    const source = (path: string): string => {
      if (hasPath(objectLayer, path)) return '';
      const variable = envLayer.sources.get(path);
      if (variable) return ` (from ${variable})`;
      return file && hasPath(fileLayer, path) ? ` (in ${file})` : '';
    };
    throw new BusConfigError(
      (validate.errors ?? []).map((e) => {
        const issue = toIssue(e);
        return { path: issue.path, message: issue.message + source(issue.path) };
      }),
    );
  }
  if (callback) transport!['password'] = callback;
  const config = merged as BusConfig;
  return { config, redacted: redact(config), file, warnings };
}

async function readConfigFile(file: string): Promise<Layer> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`config file ${file}: ${code === 'ENOENT' ? 'not found' : String(code ?? err)}`, {
      cause: err,
    });
  }
  let data: unknown;
  try {
    data = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data))
    throw new ConfigError(`config file ${file}: the top level must be a mapping`);
  return data as Layer;
}

function isPlainObject(v: unknown): v is Layer {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `over` on top of `base`, recursively for plain objects; `undefined` never overrides. */
function merge(base: Layer, over: Layer): Layer {
  const out: Layer = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    const prev = out[key];
    // Plain objects are always copied: the caller's config object is never modified.
    out[key] = isPlainObject(value) ? merge(isPlainObject(prev) ? prev : {}, value) : value;
  }
  return out;
}

function hasSecret(layer: Layer): { password: boolean; passwordFile: boolean } {
  const t = layer['transport'];
  if (!isPlainObject(t)) return { password: false, passwordFile: false };
  return { password: t['password'] !== undefined, passwordFile: t['passwordFile'] !== undefined };
}

/**
 * `password` and `passwordFile` are one setting: the highest layer that gives either decides,
 * so an env `XMPPBUS_PASSWORD` replaces a file's `passwordFile` instead of clashing with it.
 */
function pickSecret(merged: Layer, layers: readonly Layer[]): void {
  const transport = merged['transport'];
  if (!isPlainObject(transport)) return;
  for (const layer of layers) {
    const has = hasSecret(layer);
    if (!has.password && !has.passwordFile) continue;
    if (has.password && has.passwordFile)
      throw new BusConfigError([{ path: 'transport', message: 'sets both password and passwordFile; use one' }]);
    const t = layer['transport'] as Layer;
    delete transport['password'];
    delete transport['passwordFile'];
    if (has.password) transport['password'] = t['password'];
    else transport['passwordFile'] = t['passwordFile'];
    return;
  }
}

function hasPath(layer: Layer, path: string): boolean {
  let node: unknown = layer;
  for (const key of path.split('.')) {
    if (!isPlainObject(node) || !(key in node)) return false;
    node = node[key];
  }
  return path !== '';
}

/** ajv's `/transport/tls/caFile` → `transport.tls.caFile`, `/access/rules/0/from` → `access.rules[0].from`. */
function toIssue(e: ErrorObject): ConfigIssue {
  const segments = e.instancePath.split('/').slice(1);
  let path = '';
  for (const s of segments) path += /^\d+$/.test(s) ? `[${s}]` : path ? `.${s}` : s;
  const params = e.params as Record<string, unknown>;
  if (e.keyword === 'additionalProperties') {
    const key = String(params['additionalProperty']);
    return { path: path ? `${path}.${key}` : key, message: 'is not a known option' };
  }
  if (e.keyword === 'required') {
    const key = String(params['missingProperty']);
    return { path: path ? `${path}.${key}` : key, message: 'is required' };
  }
  if (e.keyword === 'enum') {
    const allowed = (params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ');
    return { path, message: `must be one of ${allowed}` };
  }
  return { path, message: e.message ?? 'is invalid' };
}

/** A deep copy with every secret replaced, frozen: what `bus.config` shows and logs may print. */
export function redact(config: BusConfig): Readonly<BusConfig> {
  const copy = structuredCloneData(config) as BusConfig;
  if (copy.transport && config.transport?.password !== undefined) copy.transport.password = REDACTED;
  return deepFreeze(copy);
}

function structuredCloneData(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(structuredCloneData);
  if (isPlainObject(value)) {
    const out: Layer = {};
    for (const [k, v] of Object.entries(value)) out[k] = typeof v === 'function' ? REDACTED : structuredCloneData(v);
    return out;
  }
  return value;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Resolves the transport secret: the callback or string, or the file's content (read now). */
export function secretOf(transport: { password?: SecretInput; passwordFile?: string }, cwd: string): SecretInput {
  const { password, passwordFile } = transport;
  if (password !== undefined) return password;
  if (passwordFile === undefined)
    throw new BusConfigError([
      { path: 'transport.password', message: 'is required (XMPPBUS_PASSWORD, or transport.passwordFile)' },
    ]);
  const path = resolve(cwd, passwordFile);
  return async () => {
    try {
      return (await readFile(path, 'utf8')).trim();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ConfigError(
        `transport.passwordFile ${path}: ${code === 'ENOENT' ? 'not found' : String(code ?? err)}`,
        {
          cause: err,
        },
      );
    }
  };
}
