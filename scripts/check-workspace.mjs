// Fails when workspace packages disagree on the version, depend on each other at another
// version, or import in a direction the architecture forbids (core/schema must stay I/O-free;
// features must not depend on a concrete transport).
import { readFileSync } from 'node:fs';

const root = JSON.parse(readFileSync('package.json', 'utf8'));
const pkgs = root.workspaces.map((dir) => ({ dir, json: JSON.parse(readFileSync(`${dir}/package.json`, 'utf8')) }));
const version = root.version;
const problems = [];
const FEATURES = new Set(['@xmppbus/rpc', '@xmppbus/pubsub', '@xmppbus/messaging']);
const NO_IO = new Set(['@xmppbus/core', '@xmppbus/schema']);
// The stream engine sits under the socket transports: it is I/O, and knows no transport.
const isIoPackage = (dep) => dep.startsWith('@xmppbus/transport-') || dep === '@xmppbus/stream';
// The composition root (bus) and DI sit on top: only they, the CLI (an app built on the bus)
// and apps may depend on them, and tsyringe is for di alone.
const ON_TOP = new Set(['@xmppbus/bus', '@xmppbus/di']);
const APPS = new Set(['@xmppbus/cli']);
for (const { dir, json } of pkgs) {
  if (json.version !== version) problems.push(`${json.name} is ${json.version}, root is ${version}`);
  for (const [dep, range] of Object.entries(json.dependencies ?? {})) {
    if (dep.startsWith('@xmppbus/') && range !== version)
      problems.push(`${json.name} depends on ${dep}@${range}, want ${version}`);
    if (FEATURES.has(json.name) && isIoPackage(dep)) problems.push(`${json.name} must not depend on ${dep}`);
    if (ON_TOP.has(dep) && !ON_TOP.has(json.name) && !APPS.has(json.name))
      problems.push(`${json.name} must not depend on ${dep}`);
    // Features are instrumented through core's Instrumentation hooks, never by importing OTel.
    if (FEATURES.has(json.name) && (dep === '@xmppbus/telemetry' || dep.startsWith('@opentelemetry/')))
      problems.push(`${json.name} must not depend on ${dep} (instrument through session.instrumentation)`);
    // Telemetry sits on core and the OTel API only; the SDK is the application's choice.
    if (json.name === '@xmppbus/telemetry' && dep.startsWith('@xmppbus/') && dep !== '@xmppbus/core')
      problems.push(`${json.name} depends on core only, not on ${dep}`);
    if (json.name === '@xmppbus/telemetry' && dep.startsWith('@opentelemetry/'))
      problems.push(
        `${json.name}: ${dep} belongs in peerDependencies (api) or devDependencies (SDK), not dependencies`,
      );
    if ((dep === 'tsyringe' || dep === 'reflect-metadata') && json.name !== '@xmppbus/di')
      problems.push(`${json.name} must not depend on ${dep} (only @xmppbus/di uses tsyringe)`);
    if (json.name === '@xmppbus/stream' && dep.startsWith('@xmppbus/') && dep !== '@xmppbus/core')
      problems.push(`${json.name} depends on core only, not on ${dep}`);
    if (
      NO_IO.has(json.name) &&
      (dep.startsWith('@xmpp/client') || dep.startsWith('@xmpp/component') || isIoPackage(dep))
    )
      problems.push(`${json.name} must stay I/O-free but depends on ${dep}`);
  }
  if (json.name === '@xmppbus/telemetry' && !json.peerDependencies?.['@opentelemetry/api'])
    problems.push(`${json.name} needs @opentelemetry/api as a peer dependency`);
  if (!json.exports?.['.']) problems.push(`${dir} has no "exports" entry`);
  // Cross-package back doors: packages talk through their public entry points only.
  for (const sub of Object.keys(json.exports ?? {}))
    if (sub.includes('internal')) problems.push(`${json.name} exports '${sub}': no internal entry points`);
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`workspace ok: ${pkgs.length} packages at ${version}`);
