// Type-checks every ```ts / ```typescript block of README.md, packages/*/README.md and docs/*.md,
// and runs the ones marked runnable, so the examples people copy keep working.
//
// Each block becomes its own ES module in .tmp/readme-check/ (top-level await allowed), checked with
// the project's TypeScript and tsconfig.base.json, minus the unused-name rules (examples may
// declare things only to show them) and noPropertyAccessFromIndexSignature (`process.env.X`). `@xmppbus/*` resolves through the workspace links in
// node_modules with the "source" condition, so no build is needed.
//
// Markers, an HTML comment on the line(s) right before the fence (invisible on GitHub):
//   <!-- readme-check: skip (why) -->   not checked: a deliberate fragment. Keep these rare.
//   <!-- readme-check: run -->          also executed with `node --conditions=source --import tsx`; fails on a
//                                        non-zero exit or after 30 s (a hang, an open handle).
// Runnable blocks must need no server (use the in-memory hub) and exit on their own.
//
// `node scripts/check-readme-code.mjs [--keep] [files…]`: --keep leaves .tmp/readme-check/<pid>/ behind.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';

// Inside the repo (so `@xmppbus/*` resolves through node_modules) under .tmp/, which git, ESLint
// and Prettier ignore; one directory per run, as runs may overlap in one checkout.
const ROOT = '.tmp/readme-check';
const OUT = join(ROOT, String(process.pid));
const RUN_TIMEOUT_MS = Number(process.env.README_CHECK_TIMEOUT_MS ?? 30_000);
const started = Date.now();
const args = process.argv.slice(2);
const keep = args.includes('--keep');
const only = args.filter((a) => !a.startsWith('--'));

const mdFiles =
  only.length > 0
    ? only
    : [
        'README.md',
        ...readdirSync('packages')
          .map((p) => join('packages', p, 'README.md'))
          .filter((f) => existsSync(f)),
        ...readdirSync('docs')
          .filter((f) => f.endsWith('.md'))
          .map((f) => join('docs', f)),
      ].sort();

// ---- extract -------------------------------------------------------------------------------
const OPEN = /^(\s*)```(ts|typescript)\s*$/;
const CLOSE = /^\s*```\s*$/;
const MARKER = /^\s*<!--\s*readme-check:\s*(\S+)\s*(.*?)\s*-->\s*$/;

/** @type {{ md: string, line: number, index: number, file: string, code: string, mode: 'check' | 'run' | 'skip', reason?: string }[]} */
const blocks = [];
const problems = []; // malformed markers
for (const md of mdFiles) {
  const lines = readFileSync(md, 'utf8').split('\n');
  let index = 0;
  for (let i = 0; i < lines.length; i++) {
    const open = OPEN.exec(lines[i]);
    if (!open) {
      // Skip over fences of other languages so their content is never mistaken for a fence.
      if (/^\s*```/.test(lines[i])) while (++i < lines.length && !CLOSE.test(lines[i]));
      continue;
    }
    const indent = open[1].length;
    const start = i;
    const body = [];
    while (++i < lines.length && !CLOSE.test(lines[i])) body.push(lines[i].slice(indent));
    index++;
    let mode = 'check';
    let reason;
    let m = start - 1;
    while (m >= 0 && lines[m].trim() === '') m--;
    const marker = m >= 0 ? MARKER.exec(lines[m]) : null;
    if (marker) {
      if (marker[1] === 'run') mode = 'run';
      else if (marker[1] === 'skip') {
        mode = 'skip';
        reason = marker[2].replace(/^\(|\)$/g, '');
        if (!reason) problems.push(`${md}:${m + 1}: "readme-check: skip" needs a reason, e.g. skip (fragment of …)`);
      } else problems.push(`${md}:${m + 1}: unknown marker "readme-check: ${marker[1]}" (want skip or run)`);
    }
    const file = join(OUT, `${md.replace(/\.md$/, '').replace(/[/\\]/g, '__')}.${index}.ts`);
    blocks.push({ md, line: start + 1, index, file, code: body.join('\n'), mode, reason });
  }
}

// Remove what runs that died left behind (their pid is gone), then start afresh.
for (const dir of existsSync(ROOT) ? readdirSync(ROOT) : []) {
  const pid = Number(dir);
  let alive = pid === process.pid;
  try {
    if (!alive && pid > 0) alive = process.kill(pid, 0);
  } catch {
    alive = false;
  }
  if (!alive) rmSync(join(ROOT, dir), { recursive: true, force: true });
}
mkdirSync(OUT, { recursive: true });
const checked = blocks.filter((b) => b.mode !== 'skip');
// `export {}` keeps every block a module even without imports; it adds no line before the code.
for (const b of checked) writeFileSync(b.file, `${b.code}\nexport {};\n`);

// ---- type-check ------------------------------------------------------------------------------
const config = ts.parseJsonConfigFileContent(
  {
    extends: resolve('tsconfig.base.json'),
    compilerOptions: {
      noEmit: true,
      composite: false,
      declaration: false,
      declarationMap: false,
      sourceMap: false,
      inlineSources: false,
      noUnusedLocals: false,
      noUnusedParameters: false,
      noPropertyAccessFromIndexSignature: false, // `process.env.SECRET` is what readers write
      moduleDetection: 'force',
      customConditions: ['source'],
    },
    files: checked.map((b) => resolve(b.file)),
  },
  ts.sys,
  resolve(OUT),
);
const program = ts.createProgram({ rootNames: config.fileNames, options: config.options });
const failures = new Map(); // block -> string[]
const fail = (b, msg) => failures.set(b, [...(failures.get(b) ?? []), msg]);
for (const d of [...config.errors, ...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()])
  problems.push(`tsconfig: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
for (const b of checked) {
  const sf = program.getSourceFile(resolve(b.file));
  if (!sf) {
    fail(b, 'not part of the program');
    continue;
  }
  for (const d of [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)]) {
    const { line, character } = sf.getLineAndCharacterOfPosition(d.start ?? 0);
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n    ');
    // Line 1 of the block is the line after the opening fence.
    fail(b, `${b.md}:${b.line + 1 + line}:${character + 1} TS${d.code}: ${text}`);
  }
}

// ---- run ------------------------------------------------------------------------------------
// `node --import tsx` (not the tsx CLI) so the block runs in one process a timeout can kill.
const runOne = (b) =>
  new Promise((done) => {
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', b.file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(b, `${b.md}:${b.line}: run: no exit after ${RUN_TIMEOUT_MS} ms (a hang, or a handle left open)`);
    }, RUN_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0 && signal !== 'SIGKILL') fail(b, `${b.md}:${b.line}: run: exit ${code ?? signal}`);
      if (code !== 0 && output.trim()) {
        const tail = output.trimEnd().split('\n').slice(-15);
        fail(b, `    ${tail.join('\n    ')}`);
      }
      done();
    });
  });
const runnable = checked.filter((b) => b.mode === 'run' && !failures.has(b));
// Two at a time: tsx start-up dominates, and the machine is shared.
for (let i = 0; i < runnable.length; i += 2) await Promise.all(runnable.slice(i, i + 2).map(runOne));

// The empty .tmp/readme-check/ stays: removing it could race with a run that is starting.
if (!keep) rmSync(OUT, { recursive: true, force: true });

// ---- report ---------------------------------------------------------------------------------
const skipped = blocks.filter((b) => b.mode === 'skip');
const ran = blocks.filter((b) => b.mode === 'run').length;
const summary =
  `${blocks.length} ts blocks in ${new Set(blocks.map((b) => b.md)).size} files: ` +
  `${checked.length} type-checked, ${ran} run, ${skipped.length} skipped`;
const listSkipped = () => skipped.forEach((b) => console.log(`  skipped ${b.md}:${b.line}: ${b.reason}`));
if (failures.size > 0 || problems.length > 0) {
  console.error(
    `readme check: ${failures.size} of ${checked.length} block(s) fail (${summary}; ${Date.now() - started} ms)`,
  );
  for (const b of blocks.filter((x) => failures.has(x))) {
    const msgs = failures.get(b);
    console.error(`FAIL ${b.md}:${b.line} (block ${b.index}${b.mode === 'run' ? ', run' : ''})`);
    for (const msg of msgs) console.error(`  ${msg}`);
  }
  for (const p of problems) console.error(`  ${p}`);
  listSkipped();
  if (!keep) console.error(`(node ${relative('.', process.argv[1])} --keep keeps the extracted modules in ${OUT}/)`);
  process.exit(1);
}
console.log(`readme check: 0 failures (${summary}; ${Date.now() - started} ms)`);
listSkipped();
