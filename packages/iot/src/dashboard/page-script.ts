// The dashboard's browser script, served as /app.js (a string, so the built package needs no
// asset copying). Plain ES2017, no template literals (this file is one). Agent-supplied text only
// ever reaches the DOM through textContent / setAttribute, never innerHTML.
//
// DOM hooks for tests: [data-agent=<jid>] cards with data-presence; [data-field=<name>] rows with
// data-value; [data-alert=<id>] alert rows with data-kind/data-severity; [data-control=<name>]
// controls, their .cstatus with data-state=ok|error|queued|delivered|failed; .seen with data-last-seen/data-source (monitor|server); #connection[data-connection=open|closed].
export const DASHBOARD_JS = String.raw`(function () {
  'use strict';
  var HISTORY = 120;
  var agents = new Map();   // jid -> { view, card, fields: Map(name -> row) }
  var alerts = new Map();   // id -> { view, li }
  var updates = 0;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) if (attrs[k] !== undefined) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function fmt(v) {
    if (typeof v === 'number') {
      if (!isFinite(v)) return String(v);
      var a = Math.abs(v);
      return a >= 1000 ? v.toFixed(0) : a >= 100 ? v.toFixed(1) : v.toFixed(2).replace(/\.?0+$/, '') || '0';
    }
    if (typeof v === 'boolean') return v ? 'on' : 'off';
    return String(v);
  }
  function ago(t) {
    if (!t) return 'never';
    var s = Math.max(0, Math.round((Date.now() - t) / 1000));
    return s < 60 ? s + ' s ago' : s < 3600 ? Math.round(s / 60) + ' min ago' : Math.round(s / 3600) + ' h ago';
  }
  function num(v) { return typeof v === 'boolean' ? (v ? 1 : 0) : typeof v === 'number' ? v : null; }

  // ── sparklines (uPlot, served locally) ──────────────────────────────────────────────
  function spark(cell, history, isBool) {
    var xs = [], ys = [];
    for (var i = 0; i < history.length; i++) { xs.push(history[i].t / 1000); ys.push(history[i].v); }
    var data = [xs, ys];
    if (typeof uPlot !== 'function') return { data: data, plot: null };
    var plot = new uPlot({
      width: 120, height: 30, pxAlign: false,
      cursor: { show: false }, legend: { show: false }, select: { show: false },
      scales: { x: { time: false }, y: isBool ? { range: [-0.1, 1.1] } : { auto: true } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: '#2563eb', width: 1.5, fill: 'rgba(37,99,235,0.10)', points: { show: false },
        paths: isBool && uPlot.paths && uPlot.paths.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined }]
    }, data, cell);
    return { data: data, plot: plot };
  }
  function pushPoint(row, t, v) {
    var n = num(v);
    if (n === null || !row.chart) return;
    var d = row.chart.data;
    d[0].push(t / 1000); d[1].push(n);
    if (d[0].length > HISTORY) { d[0].shift(); d[1].shift(); }
    if (row.chart.plot) row.chart.plot.setData(d);
  }

  // ── agents ──────────────────────────────────────────────────────────────────────────
  function fieldRow(a, f) {
    var tr = el('tr', { 'data-field': f.name, 'data-value': f.value });
    tr.appendChild(el('td', { 'class': 'fname', title: f.name }, f.name));
    var val = el('td', { 'class': 'fval' });
    var vtext = el('span', { 'class': 'v' }, fmt(f.value));
    var unit = el('span', { 'class': 'unit' }, f.unit || '');
    val.appendChild(vtext); val.appendChild(unit);
    tr.appendChild(val);
    var sp = el('td', { 'class': 'spark' });
    tr.appendChild(sp);
    var row = { tr: tr, vtext: vtext, unit: unit, chart: null };
    a.fields.set(f.name, row);
    a.table.appendChild(tr);
    if (num(f.value) !== null) row.chart = spark(sp, f.history || [], typeof f.value === 'boolean');
    return row;
  }
  function controlEl(a, c) {
    var wrap = el('span', { 'class': 'control', 'data-control': c.name, 'data-kind': c.kind });
    var status = el('span', { 'class': 'cstatus' });
    function send(value, button) {
      button.disabled = true; status.textContent = '…'; status.removeAttribute('data-state');
      fetch('/api/control', { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ agent: a.view.jid, parameter: c.name, value: value }) })
        .then(function (r) { return r.json().then(function (b) { if (!r.ok) throw new Error(b.error || r.status); return b; }); })
        .then(function (b) {
          // Queued for an offline agent: the command's own events say when it is delivered.
          if (b.state === 'queued') { if (!wrap.command || wrap.command.id !== b.id) commandState(wrap, { id: b.id, state: 'queued' }); }
          else { status.textContent = '✓'; status.title = ''; status.setAttribute('data-state', 'ok'); }
        },
              function (e) { status.textContent = '✗'; status.title = String(e.message || e); status.setAttribute('data-state', 'error'); })
        .then(function () { button.disabled = false; });
    }
    if (c.kind === 'boolean') {
      wrap.appendChild(el('span', { 'class': 'cname' }, c.name));
      var b = el('button', { type: 'button', 'data-on': c.value === true }, c.value === true ? 'Turn off' : 'Turn on');
      b.addEventListener('click', function () { send(b.getAttribute('data-on') !== 'true', b); });
      wrap.appendChild(b);
      wrap.setValue = function (v) { b.setAttribute('data-on', v === true); b.textContent = v === true ? 'Turn off' : 'Turn on'; };
    } else {
      wrap.appendChild(el('span', { 'class': 'cname' }, c.name + (c.unit ? ' (' + c.unit + ')' : '')));
      var input;
      if (c.kind === 'enum') {
        input = el('select');
        (c.options || []).forEach(function (o) { input.appendChild(el('option', { value: o }, o)); });
      } else {
        input = el('input', { type: c.kind === 'numeric' ? 'number' : 'text', min: c.min, max: c.max, step: 'any' });
      }
      if (c.value !== undefined) input.value = String(c.value);
      var set = el('button', { type: 'button' }, 'Set');
      set.addEventListener('click', function () {
        send(c.kind === 'numeric' ? Number(input.value) : input.value, set);
      });
      wrap.appendChild(input); wrap.appendChild(set);
      wrap.setValue = function (v) { if (document.activeElement !== input) input.value = String(v); };
    }
    wrap.appendChild(status);
    wrap.status = status;
    a.controls.set(c.name, wrap);
    return wrap;
  }
  var COMMAND_TEXT = { queued: '⏳ queued', delivered: '✓ delivered', failed: '✗ not delivered' };
  function commandState(wrap, cmd) {
    wrap.command = cmd;
    wrap.status.textContent = COMMAND_TEXT[cmd.state] || cmd.state;
    wrap.status.title = cmd.error || (cmd.state === 'queued' ? 'waits for the agent to come online' : '');
    wrap.status.setAttribute('data-state', cmd.state);
    wrap.status.setAttribute('data-command', cmd.id);
  }
  function onCommand(cmd) {
    var a = agents.get(cmd.agent);
    var wrap = a && a.controls.get(cmd.parameter);
    if (wrap) commandState(wrap, cmd);
  }
  function upsertAgent(v) {
    var old = agents.get(v.jid);
    var card = el('article', { 'class': 'agent', 'data-agent': v.jid, 'data-presence': v.presence });
    var head = el('div', { 'class': 'agent-head' });
    var names = el('div', { style: undefined });
    names.appendChild(el('div', { 'class': 'agent-name' }, v.name));
    names.appendChild(el('div', { 'class': 'agent-jid' }, v.jid));
    head.appendChild(names);
    var badge = el('span', { 'class': 'badge', 'data-presence': v.presence }, v.presence);
    head.appendChild(badge);
    card.appendChild(head);
    var seen = el('div', { 'class': 'seen' });
    card.appendChild(seen);
    var table = el('table', { 'class': 'fields' });
    card.appendChild(table);
    var a = { view: v, card: card, badge: badge, seen: seen, table: table, fields: new Map(), controls: new Map() };
    v.fields.forEach(function (f) { fieldRow(a, f); });
    if (v.controls.length) {
      var ctl = el('div', { 'class': 'controls' });
      v.controls.forEach(function (c) { ctl.appendChild(controlEl(a, c)); });
      card.appendChild(ctl);
    }
    var container = document.getElementById('agents');
    // A redrawn card keeps what its controls' commands are doing.
    if (old) old.controls.forEach(function (w, name) { var n = a.controls.get(name); if (n && w.command) commandState(n, w.command); });
    if (old) container.replaceChild(card, old.card);
    else insertSorted(container, card, v.name);
    agents.set(v.jid, a);
    refreshSeen(a);
    markAlerts();
  }
  function insertSorted(container, card, name) {
    var kids = container.children;
    for (var i = 0; i < kids.length; i++) {
      var other = agents.get(kids[i].getAttribute('data-agent'));
      if (other && other.view.name.localeCompare(name, undefined, { numeric: true }) > 0) {
        container.insertBefore(card, kids[i]); return;
      }
    }
    container.appendChild(card);
  }
  function refreshSeen(a) {
    // A server-provided last-seen (XEP-0012) is said so: the monitor never saw the agent itself.
    a.seen.textContent = a.view.presence === 'online' ? 'online · last update ' + ago(a.view.lastSeen)
      : 'last seen ' + ago(a.view.lastSeen) + (a.view.lastSeenSource === 'server' ? ' (server)' : '');
    a.seen.setAttribute('data-last-seen', a.view.lastSeen || '');
    a.seen.setAttribute('data-source', a.view.lastSeenSource || '');
  }
  function onValue(e) {
    var a = agents.get(e.agent);
    if (!a) return;
    var row = a.fields.get(e.field);
    var f = { name: e.field, value: e.value, unit: e.unit, timestamp: e.timestamp, history: [] };
    if (!row) { a.view.fields.push(f); row = fieldRow(a, f); }
    row.tr.setAttribute('data-value', String(e.value));
    row.vtext.textContent = fmt(e.value);
    if (e.unit !== undefined) row.unit.textContent = e.unit;
    pushPoint(row, e.timestamp, e.value);
    var ctl = a.controls.get(e.field);
    if (ctl && ctl.setValue) ctl.setValue(e.value);
    a.view.lastSeen = Math.max(a.view.lastSeen || 0, Date.now());
    a.view.lastSeenSource = 'monitor';
    updates++;
  }
  function onPresence(e) {
    var a = agents.get(e.agent);
    if (!a) return;
    a.view.presence = e.presence;
    if (e.lastSeen) { a.view.lastSeen = e.lastSeen; a.view.lastSeenSource = 'monitor'; }
    a.card.setAttribute('data-presence', e.presence);
    a.badge.setAttribute('data-presence', e.presence);
    a.badge.textContent = e.presence;
    refreshSeen(a);
  }

  // ── alerts ──────────────────────────────────────────────────────────────────────────
  function addAlert(v) {
    removeAlert(v.id);
    var li = el('li', { 'data-alert': v.id, 'data-agent': v.agent, 'data-field': v.field, 'data-kind': v.kind,
      'data-severity': v.severity });
    li.appendChild(el('span', { 'class': 'sev' }, v.severity));
    var a = agents.get(v.agent);
    li.appendChild(el('span', { 'class': 'who' }, (a ? a.view.name : v.agent) + (v.field ? ' · ' + v.field : '')));
    li.appendChild(el('span', { 'class': 'msg' }, v.message));
    li.appendChild(el('span', { 'class': 'since', 'data-since': v.raisedAt }, ago(v.raisedAt)));
    document.getElementById('alerts').prepend(li);
    alerts.set(v.id, { view: v, li: li });
  }
  function removeAlert(id) {
    var old = alerts.get(id);
    if (!old) return;
    old.li.remove();
    alerts.delete(id);
  }
  function markAlerts() {
    agents.forEach(function (a) {
      a.card.classList.remove('alerting');
      a.fields.forEach(function (r) { r.tr.classList.remove('alerting'); });
    });
    alerts.forEach(function (x) {
      var a = agents.get(x.view.agent);
      if (!a) return;
      a.card.classList.add('alerting');
      var r = x.view.field && a.fields.get(x.view.field);
      if (r) r.tr.classList.add('alerting');
    });
  }
  function stats() {
    var online = 0;
    agents.forEach(function (a) { if (a.view.presence !== 'offline') online++; });
    document.getElementById('stat-online').textContent = String(online);
    document.getElementById('stat-agents').textContent = String(agents.size);
    document.getElementById('stat-alerts').textContent = String(alerts.size);
    document.getElementById('stat-updates').textContent = String(updates);
    document.getElementById('no-alerts').hidden = alerts.size > 0;
  }

  // ── the event stream ────────────────────────────────────────────────────────────────
  function snapshot(s) {
    var container = document.getElementById('agents');
    container.textContent = '';
    document.getElementById('alerts').textContent = '';
    agents.clear(); alerts.clear();
    s.agents.forEach(upsertAgent);
    s.alerts.forEach(addAlert);
    (s.commands || []).forEach(onCommand);
    markAlerts(); stats();
  }
  function apply(e) {
    if (e.type === 'value') onValue(e);
    else if (e.type === 'presence') onPresence(e);
    else if (e.type === 'agent') upsertAgent(e.agent);
    else if (e.type === 'command') onCommand(e.command);
    else if (e.type === 'alert') { if (e.state === 'raised') addAlert(e.alert); else removeAlert(e.alert.id); }
  }
  var conn = document.getElementById('connection');
  function setConn(state, text) { conn.setAttribute('data-connection', state); conn.textContent = text; }
  var source = new EventSource('/events');
  source.addEventListener('open', function () { setConn('open', 'live'); });
  source.addEventListener('error', function () { setConn('closed', 'reconnecting…'); });
  source.addEventListener('snapshot', function (m) { snapshot(JSON.parse(m.data)); setConn('open', 'live'); });
  source.addEventListener('batch', function (m) {
    var events = JSON.parse(m.data);
    var alertsChanged = false;
    for (var i = 0; i < events.length; i++) {
      apply(events[i]);
      if (events[i].type === 'alert' || events[i].type === 'agent') alertsChanged = true;
    }
    if (alertsChanged) markAlerts();
    stats();
  });
  setInterval(function () {
    agents.forEach(refreshSeen);
    alerts.forEach(function (x) { x.li.querySelector('.since').textContent = ago(x.view.raisedAt); });
  }, 1000);
})();
`;
