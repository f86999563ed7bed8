/**
 * `--env-file <file>`: `KEY=value` lines (the `.env` that `xmppbus server start --env` writes,
 * or any dotenv file) read as environment variables under the real environment, which wins,
 * as with `node --env-file`. Values may be bare, 'single-quoted' (literal) or "double-quoted"
 * (JSON escapes); `#` starts a comment line; `export ` is allowed.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from './errors.js';

export function parseEnvFile(text: string, name = '.env'): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new UsageError(`${name}:${i + 1}: not a KEY=value line`);
    const [, key, raw] = m as unknown as [string, string, string];
    out[key] = value(raw, `${name}:${i + 1}`);
  }
  return out;
}

function value(raw: string, where: string): string {
  if (raw.startsWith("'")) {
    const end = raw.indexOf("'", 1);
    if (end < 0) throw new UsageError(`${where}: unterminated '…'`);
    return raw.slice(1, end);
  }
  if (raw.startsWith('"')) {
    const m = /^"((?:[^"\\]|\\.)*)"/.exec(raw);
    if (!m) throw new UsageError(`${where}: unterminated "…"`);
    try {
      return JSON.parse(`"${m[1]!}"`) as string;
    } catch {
      throw new UsageError(`${where}: bad escape in "…"`);
    }
  }
  return raw.replace(/\s+#.*$/, '').trim();
}

/** The environment with the file's variables underneath. */
export function withEnvFile(
  env: Readonly<Record<string, string | undefined>>,
  file: string,
  cwd: string,
): Record<string, string | undefined> {
  const path = resolve(cwd, file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--env-file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  return { ...parseEnvFile(text, file), ...env };
}
