// Packages that install: packs every publishable workspace (its prepack builds it), installs the
// tarballs into a fresh project outside the repo, type-checks a consumer against them with
// `skipLibCheck: false` under the repo's TypeScript, and runs it against a real Prosody.
//
// XMPPBUS_PACK_FROM=<checkout> packs another checkout instead of this one (e.g. a fresh clone, to
// prove that packing needs no prior build); the consumer and the server are the same.
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { startProsody } from '@xmppbus/testing';
import { expect, it } from 'vitest';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const packFrom = resolve(process.env['XMPPBUS_PACK_FROM'] ?? repo);
// The TypeScript we support: the repo's own (the consumer has none of its own).
const tsc = createRequire(join(repo, 'package.json')).resolve('typescript/bin/tsc');

interface Manifest {
  name: string;
  private?: boolean;
  bin?: string | Record<string, string>;
  exports?: Record<string, unknown>;
}
interface Workspace {
  dir: string;
  json: Manifest;
}
interface PackResult {
  name: string;
  filename: string;
  files: { path: string }[];
}

const readJson = (file: string): unknown => JSON.parse(readFileSync(file, 'utf8'));

/** npm without the settings of an enclosing `npm test` (its workspace, prefix, lifecycle). */
function npmEnv(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_registry', 'npm_config_cache', 'npm_config_userconfig']);
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_') || keep.has(k)));
}

/** Runs a command to completion; rejects with its output when it fails or outlives `timeout`. */
function run(
  file: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeout: number },
): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      file,
      args,
      { ...options, env: options.env ?? npmEnv(), maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
        else resolvePromise(stdout);
      },
    );
  });
}

/** What a tarball may hold: the build output (js, d.ts, js maps), README, LICENSE, package.json. */
const ALLOWED = /^(?:package\.json|README\.md|LICENSE|dist\/.+\.(?:js|d\.ts|js\.map))$/;
const FORBIDDEN = /\.(?:test|fixture)\.(?:js|d\.ts|js\.map)$|tsbuildinfo|\.d\.ts\.map$/;

it('packs every publishable workspace, installs the tarballs outside the repo, type-checks and runs a consumer', async () => {
  const workspaces = (readJson(join(packFrom, 'package.json')) as { workspaces: string[] }).workspaces.map(
    (dir): Workspace => ({ dir, json: readJson(join(packFrom, dir, 'package.json')) as Manifest }),
  );
  const published = workspaces.filter((w) => w.json.private !== true);
  expect(published.length).toBeGreaterThan(10);

  const temp = mkdtempSync(join(tmpdir(), 'xmppbus-pack-'));
  // Outside the repo, or Node and TypeScript would find the repo's node_modules from the consumer.
  expect(relative(repo, temp).startsWith('..')).toBe(true);
  try {
    // ---- pack: one npm command; each prepack builds its package from a clean dist ------------
    const tarballs = join(temp, 'tarballs');
    const packArgs = ['pack', '--json', '--pack-destination', tarballs, ...published.flatMap((w) => ['-w', w.dir])];
    mkdirSync(tarballs);
    const packed = JSON.parse(await run('npm', packArgs, { cwd: packFrom, timeout: 600_000 })) as PackResult[];
    expect(packed.map((p) => p.name).sort()).toEqual(published.map((w) => w.json.name).sort());
    for (const p of packed) {
      const paths = p.files.map((f) => f.path);
      expect.soft(paths, p.name).toContain('LICENSE');
      expect.soft(paths, p.name).toContain('README.md');
      expect.soft(paths, p.name).toContain('dist/index.js');
      expect.soft(paths, p.name).toContain('dist/index.d.ts');
      expect
        .soft(
          paths.filter((f) => !ALLOWED.test(f) || FORBIDDEN.test(f)),
          `${p.name} ships only dist (js, d.ts, js maps), README, LICENSE`,
        )
        .toEqual([]);
    }

    // ---- install: a fresh project outside the repo, one npm install -----------------------------
    const app = join(temp, 'app');
    cpSync(join(repo, 'test/fixtures/pack-consumer'), join(app, 'src'), { recursive: true });
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'xmppbus-consumer', private: true, type: 'module' }, null, 2),
    );
    // --ignore-scripts: our packages have no install scripts; the only one in the tree is
    // better-sqlite3's native build, which the repo's own `npm ci` already exercises and which
    // this consumer never loads at run time (its JS loads the addon lazily).
    await run(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        ...packed.map((p) => join(tarballs, p.filename)),
        '@sinclair/typebox@^0.34.0',
      ],
      { cwd: app, timeout: 600_000 },
    );

    // Every entry point of every package: type-checked (all of its d.ts, skipLibCheck off) and loaded.
    const entries = published.flatMap((w) =>
      Object.keys(w.json.exports ?? { '.': null }).map((sub) =>
        sub === '.' ? w.json.name : `${w.json.name}/${sub.slice(2)}`,
      ),
    );
    writeFileSync(
      join(app, 'src/entries.ts'),
      [
        '// Generated by test/pack-install.test.ts: every entry point of every published package.',
        ...entries.map((e, i) => `import type * as m${i} from '${e}';`),
        `export type Modules = [${entries.map((_, i) => `typeof m${i}`).join(', ')}];`,
        `export const entries: readonly string[] = ${JSON.stringify(entries)};`,
        'for (const entry of entries) await import(entry);',
        'console.log(JSON.stringify({ loaded: entries.length }));',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2023'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: false,
          // TypeScript 6 loads no @types package unless listed; @types/node comes with our packages.
          types: ['node'],
          rootDir: 'src',
          outDir: 'dist',
        },
        include: ['src'],
      }),
    );
    await run(process.execPath, [tsc, '-p', app], { cwd: app, timeout: 300_000 });
    expect(await run(process.execPath, ['dist/entries.js'], { cwd: app, timeout: 120_000 })).toBe(
      `${JSON.stringify({ loaded: entries.length })}\n`,
    );
    for (const w of published) {
      const bins = typeof w.json.bin === 'string' ? [w.json.name.split('/').pop()!] : Object.keys(w.json.bin ?? {});
      for (const bin of bins) await run(join(app, 'node_modules/.bin', bin), ['--help'], { cwd: app, timeout: 60_000 });
    }

    // ---- run: the consumer against a real Prosody -----------------------------------------------
    await using server = await startProsody();
    const [serverComponent, clientComponent] = server.components;
    const out = await run(process.execPath, ['dist/main.js'], {
      cwd: app,
      timeout: 120_000,
      env: {
        ...npmEnv(),
        XMPP_SERVICE: server.componentService(),
        XMPP_SECRET: server.componentSecret,
        SERVER_COMPONENT: serverComponent!,
        CLIENT_COMPONENT: clientComponent!,
      },
    });
    expect(
      out
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as unknown),
    ).toEqual([{ sum: 42 }, { error: 'overflow', limit: 1000 }]);
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
}, 1_200_000);
