// The dashboard's page and stylesheet. The page is a static shell: the script (page-script.ts)
// builds everything from the event stream with textContent, so no agent text is ever parsed
// as HTML. The title is ours (configured), but is escaped all the same.

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function dashboardHtml(title: string): string {
  const t = escapeHtml(title);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${t}</title>
<link rel="stylesheet" href="/vendor/uPlot.css">
<link rel="stylesheet" href="/app.css">
</head>
<body>
<header class="top">
  <h1>${t}</h1>
  <div class="stats">
    <span class="stat"><b id="stat-online">0</b>/<b id="stat-agents">0</b> online</span>
    <span class="stat"><b id="stat-alerts">0</b> active alerts</span>
    <span class="stat"><b id="stat-updates">0</b> updates</span>
    <span id="connection" class="conn" data-connection="connecting">connecting…</span>
  </div>
</header>
<main>
  <section class="alerts-panel">
    <h2>Active alerts</h2>
    <ul id="alerts" class="alerts"></ul>
    <p id="no-alerts" class="muted">No active alerts.</p>
  </section>
  <section id="agents" class="agents" aria-live="polite"></section>
</main>
<script src="/vendor/uPlot.js"></script>
<script src="/app.js"></script>
</body>
</html>
`;
}

export const DASHBOARD_CSS = `
:root {
  --bg: #f4f6f9; --card: #fff; --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb;
  --ok: #16a34a; --away: #d97706; --off: #9ca3af; --warn: #d97706; --crit: #dc2626; --accent: #2563eb;
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink); }
.top { display: flex; align-items: center; justify-content: space-between; gap: 16px; padding: 12px 20px;
  background: #111827; color: #f9fafb; }
.top h1 { margin: 0; font-size: 18px; font-weight: 600; }
.stats { display: flex; gap: 16px; align-items: center; font-size: 13px; color: #d1d5db; }
.stat b { color: #fff; font-variant-numeric: tabular-nums; }
.conn { padding: 2px 8px; border-radius: 10px; background: #374151; }
.conn[data-connection="open"] { background: #065f46; }
.conn[data-connection="closed"] { background: #7f1d1d; }
main { padding: 16px 20px; }
h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); margin: 0 0 8px; }
.alerts-panel { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin-bottom: 16px; }
.alerts { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 6px; }
.alerts li { display: flex; gap: 10px; align-items: baseline; padding: 6px 10px; border-radius: 6px;
  background: #fffbeb; border-left: 4px solid var(--warn); }
.alerts li[data-severity="critical"] { background: #fef2f2; border-left-color: var(--crit); }
.alerts .sev { font-weight: 600; text-transform: uppercase; font-size: 11px; color: var(--warn); }
.alerts li[data-severity="critical"] .sev { color: var(--crit); }
.alerts .who { font-weight: 600; }
.alerts .since { margin-left: auto; color: var(--muted); font-size: 12px; white-space: nowrap; }
.muted { color: var(--muted); margin: 0; }
.agents { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px; }
.agent { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px;
  box-shadow: 0 1px 2px rgba(0,0,0,.04); }
.agent[data-presence="offline"] { opacity: .62; }
.agent.alerting { border-color: var(--crit); box-shadow: 0 0 0 1px var(--crit); }
.agent-head { display: flex; align-items: center; gap: 8px; margin-bottom: 8px; }
.agent-name { font-weight: 600; font-size: 15px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.agent-jid { color: var(--muted); font-size: 12px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.badge { margin-left: auto; display: inline-flex; align-items: center; gap: 5px; font-size: 12px; padding: 2px 8px;
  border-radius: 10px; background: #f3f4f6; white-space: nowrap; }
.badge::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: var(--off); }
.badge[data-presence="online"]::before { background: var(--ok); }
.badge[data-presence="away"]::before { background: var(--away); }
.seen { color: var(--muted); font-size: 11px; margin: -4px 0 6px; }
.fields { width: 100%; border-collapse: collapse; }
.fields td { padding: 4px 0; border-top: 1px solid var(--line); vertical-align: middle; }
.fields td.fname { color: var(--muted); width: 34%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; max-width: 0; }
.fields td.fval { font-variant-numeric: tabular-nums; font-weight: 600; width: 26%; white-space: nowrap; }
.fields td.fval .unit { font-weight: 400; color: var(--muted); margin-left: 3px; }
.fields td.spark { width: 40%; text-align: right; }
.fields tr.alerting td.fval { color: var(--crit); }
.spark .uplot { display: inline-block; }
.controls { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 10px; padding-top: 8px; border-top: 1px dashed var(--line); }
.control { display: inline-flex; align-items: center; gap: 6px; font-size: 12px; }
.control .cname { color: var(--muted); }
.control input, .control select { width: 76px; padding: 3px 5px; border: 1px solid var(--line); border-radius: 5px; font: inherit; }
.control button { padding: 4px 10px; border: 1px solid var(--accent); border-radius: 5px; background: var(--accent);
  color: #fff; font: inherit; cursor: pointer; }
.control button[data-on="true"] { background: #fff; color: var(--accent); }
.control button:disabled { opacity: .5; cursor: progress; }
.control .cstatus { color: var(--muted); min-width: 14px; }
.control .cstatus[data-state="error"], .control .cstatus[data-state="failed"] { color: var(--crit); }
.control .cstatus[data-state="queued"] { color: var(--warn); }
`;
