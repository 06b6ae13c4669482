// The rvs dashboard: plain DOM, the /v1 API, the /v1/stream push channel, uPlot for graphs.
// Every text from the API goes in with textContent (never as HTML).
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

const session = { role: null, csrf: null };
let source = null;
let last = null;
let structure = '';
const events = new Map();
let graph = null;

// ---- the API ----

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && session.csrf) headers['X-RVS-CSRF'] = session.csrf;
  let r;
  try {
    r = await fetch(path, {
      method, headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    return { ok: false, status: 0, body: { error: { message: String(e) } } };
  }
  let j = null;
  try { j = await r.json(); } catch (_) { /* no body */ }
  if (r.status === 401 && !path.startsWith('/ui/')) showLogin();
  return { ok: r.ok, status: r.status, body: j };
}

const enc = encodeURIComponent;

// ---- formatting ----

function num(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (digits !== undefined) return Number(v).toFixed(digits);
  return Math.round(v).toLocaleString('en');
}

function bytes(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return (i === 0 ? Math.round(v) : v.toFixed(1)) + ' ' + units[i];
}

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + m + 'm ' + (s % 60) + 's';
}

function healthBadge(h) {
  return el('span', { class: 'badge health-' + h, text: h });
}

function checkText(c) {
  if (!c) return 'no check';
  const r = c.last_result ? c.last_result : 'not yet run';
  return r + (c.last_reason ? ': ' + c.last_reason : '') + ' (' + c.check + ')';
}

// ---- login ----

function showLogin() {
  if (source) { source.close(); source = null; }
  session.role = null;
  session.csrf = null;
  $('#login').hidden = false;
  $('#tabs').hidden = true;
  $('#main').hidden = true;
  $('#logout').hidden = true;
  $('#role').textContent = '';
  $('#service-list').replaceChildren();
  structure = '';
  closeGraph();
  setLive(false);
}

function loggedIn(s) {
  session.role = s.role;
  session.csrf = s.csrf;
  document.body.classList.toggle('read-only', s.role !== 'admin');
  $('#login').hidden = true;
  $('#tabs').hidden = false;
  $('#main').hidden = false;
  $('#logout').hidden = false;
  $('#role').textContent = s.role;
  loadEvents();
  connect();
}

function setLive(on) {
  const b = $('#live');
  b.textContent = on ? 'live' : 'offline';
  b.classList.toggle('on', on);
}

function connect() {
  if (source) source.close();
  source = new EventSource('/v1/stream');
  source.addEventListener('tick', (e) => {
    setLive(true);
    try { onTick(JSON.parse(e.data)); } catch (err) { console.error(err); }
  });
  source.onerror = async () => {
    setLive(false);
    const r = await api('GET', '/ui/session');
    if (r.status === 401) showLogin();
  };
}

// ---- the live figures ----

function onTick(t) {
  last = t;
  renderSummary(t.director);
  renderDirector(t.director);
  renderServices(t);
  for (const ev of t.events || []) addEvent(ev);
  if (t.events && t.events.length) renderEvents();
  if (graph) appendGraph(t);
}

function renderSummary(d) {
  const i = d.info;
  const cap = i.max_connections ? ' / ' + num(i.max_connections) : '';
  $('#summary').textContent = 'v' + i.version + ' · up ' + duration(d.uptime_secs) + ' · client connections ' +
    num(i.client_connections) + cap + ' · memory ' + bytes(d.rss_bytes);
}

function renderDirector(d) {
  const i = d.info;
  const rows = [
    ['version', i.version],
    ['uptime', duration(d.uptime_secs)],
    ['configuration file', i.config_file || '(none: started without --config)'],
    ['generation', i.generation],
    ['client connections', num(i.client_connections) + (i.max_connections ? ' of a cap of ' + num(i.max_connections) : '')],
    ['waits at the cap', num(i.max_connections_waits)],
    ['proxied connections', num(i.connections)],
    ['memory (resident)', bytes(d.rss_bytes)],
    ['data planes', d.planes.join('; ')],
    ['dashboard push clients', d.stream_clients + ' (' + d.stream_dropped + ' dropped for not reading)'],
    ['graphed series', d.history_series],
    ['draining', i.draining ? 'yes' : 'no'],
  ];
  const dl = $('#director-info');
  dl.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v) })]));
}

// The values of the cells: key "object|figure".
function values(t) {
  const v = new Map();
  const put = (id, k, x) => v.set(id + '|' + k, x);
  for (const [id, figs] of Object.entries(t.rates || {})) {
    for (const [k, x] of Object.entries(figs)) {
      const f = k.endsWith('bps') ? bytes(x) + '/s' : k.endsWith('_ms') ? num(x, 1) : k === 'active' || k === 'inactive' ? num(x) : num(x, 1);
      put(id, k, f);
    }
  }
  for (const s of t.services) {
    const id = s.protocol + '/' + s.address;
    put(id, 'conns', num(s.stats.conns));
    put(id, 'quorum', s.quorum_lost ? 'quorum lost' : '');
    for (const r of s.real_servers) {
      const rid = id + '/' + r.address;
      put(rid, 'weight', r.weight + ' / ' + r.configured_weight);
      put(rid, 'health', r.health);
      put(rid, 'check', checkText(r.check));
      put(rid, 'conns', num(r.stats.conns));
    }
  }
  for (const h of t.http.services) {
    const id = 'http/' + h.address;
    put(id, 'requests', num(h.counters.requests));
    put(id, 'classes', h.counters.status_classes.map((c, i) => (i + 1) + 'xx ' + num(c)).join(' · '));
    put(id, 'unrouted', num(h.unrouted));
    for (const r of h.rules) put(id + '/rule/' + r.name, 'requests', num(r.counters.requests));
    for (const p of h.pools) {
      const pid = id + '/pool/' + p.name;
      put(pid, 'requests', num(p.counters.requests));
      for (const r of p.real_servers) {
        const rid = pid + '/' + r.address;
        put(rid, 'weight', r.weight + ' / ' + r.configured_weight);
        put(rid, 'health', r.health);
        put(rid, 'check', checkText(r.check));
        put(rid, 'requests', num(r.requests));
      }
    }
  }
  return v;
}

function cell(id, k, extra) {
  return el('td', Object.assign({ 'data-v': id + '|' + k }, extra || {}));
}

function renderServices(t) {
  const sig = JSON.stringify([
    session.role,
    t.services.map((s) => [s.protocol, s.address, s.scheduler, s.persistent, s.sorry_server, s.real_servers.map((r) => [r.address, r.configured_weight, r.health])]),
    t.http.services.map((h) => [h.address, h.rules.map((r) => [r.name, r.pool, r.match]), h.pools.map((p) => [p.name, p.real_servers.map((r) => [r.address, r.configured_weight])])]),
  ]);
  const list = $('#service-list');
  if (sig !== structure) {
    structure = sig;
    list.replaceChildren(...t.services.map(l4Card), ...t.http.services.map(httpCard));
    if (!t.services.length && !t.http.services.length) list.append(el('p', { text: 'No virtual services.' }));
  }
  const v = values(t);
  for (const c of $$('[data-v]', list)) {
    const x = v.get(c.getAttribute('data-v'));
    const text = x === undefined ? '–' : x;
    if (c.textContent !== text) c.textContent = text;
    if (c.classList.contains('health')) c.className = 'health health-' + text;
  }
  for (const h of t.http.services) drawLatency(h);
}

function figures(id, names) {
  return el('table', { class: 'figures' },
    el('tr', {}, names.map(([, label]) => el('th', { text: label }))),
    el('tr', {}, names.map(([k]) => cell(id, k))));
}

function button(text, onclick, cls) {
  return el('button', { type: 'button', class: cls, text, onclick });
}

function l4Card(s) {
  const id = s.protocol + '/' + s.address;
  const svcPath = '/v1/services/' + s.protocol + '/' + enc(s.address);
  const settings = [s.scheduler, s.persistent ? 'persistent ' + s.persistent + ' s' : null,
    s.sorry_server ? 'sorry server ' + s.sorry_server : null,
    s.max_connections ? 'max ' + s.max_connections + ' connections' : null].filter(Boolean).join(', ');
  const rows = s.real_servers.map((r) => {
    const rid = id + '/' + r.address;
    const path = svcPath + '/servers/' + enc(r.address);
    return el('tr', { 'data-server': r.address },
      el('td', { text: r.address }),
      cell(rid, 'health', { class: 'health' }),
      cell(rid, 'check', { class: 'check' }),
      cell(rid, 'weight'),
      cell(rid, 'active'), cell(rid, 'inactive'), cell(rid, 'cps'),
      cell(rid, 'inpps'), cell(rid, 'outpps'), cell(rid, 'inbps'), cell(rid, 'outbps'),
      el('td', { class: 'actions' },
        button('Graph', () => openGraph(rid, s.protocol + ' ' + s.address + ' → ' + r.address)),
        serverButtons(rid, path, r, s)));
  });
  return el('article', { class: 'service', 'data-service': id },
    el('div', { class: 'toolbar' },
      el('h2', { text: s.protocol.toUpperCase() + ' ' + s.address }),
      el('span', { class: 'settings', text: settings }),
      el('span', { class: 'warn', 'data-v': id + '|quorum' }),
      button('Graph', () => openGraph(id, s.protocol + ' ' + s.address)),
      button('Edit', () => serviceForm(s), 'admin edit-service'),
      button('Add real server', () => serverForm(svcPath, null), 'admin add-server'),
      button('Delete', () => confirmDo('Delete virtual service ' + s.address + '?', () => api('DELETE', svcPath)), 'admin danger delete-service')),
    figures(id, [['active', 'active'], ['inactive', 'inactive'], ['cps', 'conn/s'], ['inpps', 'pkt/s in'],
      ['outpps', 'pkt/s out'], ['inbps', 'in'], ['outbps', 'out'], ['conns', 'connections']]),
    el('table', { class: 'servers' },
      el('thead', {}, el('tr', {}, ['real server', 'health', 'last check', 'weight (now / set)', 'active', 'inactive',
        'conn/s', 'pkt/s in', 'pkt/s out', 'in', 'out', ''].map((h) => el('th', { text: h })))),
      el('tbody', {}, rows)));
}

// Weight, drain/back, maintenance/back (a TCP/UDP service's, `svc`), edit, delete of one real
// server at `path` (PUT takes {address, weight...}).
function serverButtons(rid, path, r, svc) {
  const set = (weight) => api('PUT', path, { address: r.address, weight }).then(report);
  const drained = r.configured_weight === 0;
  const health = (h) => api('POST', '/v1/commands', { commands: [{
    op: 'set-health', service: { protocol: svc.protocol, address: svc.address }, address: r.address, health: h }] }).then(report);
  return [
    svc ? (r.health === 'down'
      ? button('In service', () => health('up'), 'admin maint')
      : button('Maintenance', () => health('down'), 'admin maint')) : null,
    button('Weight', () => weightForm(path, r), 'admin weight'),
    drained
      ? button('Back', () => set(Number(sessionStorage.getItem('weight:' + rid) || 1)), 'admin drain')
      : button('Drain', () => { sessionStorage.setItem('weight:' + rid, String(r.configured_weight)); set(0); }, 'admin drain'),
    r.method !== undefined ? button('Edit', () => serverForm(path.replace(/\/servers\/[^/]*$/, ''), r), 'admin') : null,
    button('Delete', () => confirmDo('Delete real server ' + r.address + '?', () => api('DELETE', path)), 'admin danger'),
  ];
}

function httpCard(h) {
  const id = 'http/' + h.address;
  const base = '/v1/http/' + enc(h.address);
  const rules = h.rules.map((r) => el('tr', { 'data-rule': r.name },
    el('td', { text: r.name }), el('td', { text: r.match.join(' and ') }), el('td', { text: r.pool }),
    cell(id + '/rule/' + r.name, 'rps'), cell(id + '/rule/' + r.name, 'requests'),
    el('td', { class: 'actions' },
      button('Graph', () => openGraph(id + '/rule/' + r.name, 'http ' + h.address + ' rule ' + r.name)),
      button('Delete', () => confirmDo('Delete rule ' + r.name + '?', () => api('DELETE', base + '/rules/' + enc(r.name))), 'admin danger'))));
  const pools = h.pools.map((p) => {
    const pid = id + '/pool/' + p.name;
    const ppath = base + '/pools/' + enc(p.name) + '/servers';
    return el('div', { class: 'pool', 'data-pool': p.name },
      el('div', { class: 'toolbar' },
        el('h3', { text: 'pool ' + p.name }),
        el('span', { class: 'settings', text: p.scheduler + ', persistence ' + p.persistence + (p.sorry_server ? ', sorry server ' + p.sorry_server : '') }),
        button('Graph', () => openGraph(pid, 'http ' + h.address + ' pool ' + p.name)),
        button('Add real server', () => serverForm(ppath, null, true), 'admin')),
      figures(pid, [['rps', 'req/s'], ['active', 'active'], ['inbps', 'in'], ['outbps', 'out'], ['requests', 'requests'],
        ['2xx', '2xx/s'], ['4xx', '4xx/s'], ['5xx', '5xx/s']]),
      el('table', { class: 'servers' },
        el('thead', {}, el('tr', {}, ['real server', 'health', 'last check', 'weight (now / set)', 'active', 'inactive', 'req/s', 'in', 'out', 'requests', '']
          .map((x) => el('th', { text: x })))),
        el('tbody', {}, p.real_servers.map((r) => {
          const rid = pid + '/' + r.address;
          return el('tr', { 'data-server': r.address },
            el('td', { text: r.address }), cell(rid, 'health', { class: 'health' }), cell(rid, 'check', { class: 'check' }),
            cell(rid, 'weight'), cell(rid, 'active'), cell(rid, 'inactive'), cell(rid, 'rps'), cell(rid, 'inbps'), cell(rid, 'outbps'),
            cell(rid, 'requests'),
            el('td', { class: 'actions' },
              button('Graph', () => openGraph(rid, 'http ' + h.address + ' pool ' + p.name + ' → ' + r.address)),
              serverButtons(rid, ppath + '/' + enc(r.address), r)));
        }))));
  });
  return el('article', { class: 'service http', 'data-service': id },
    el('div', { class: 'toolbar' },
      el('h2', { text: 'HTTP ' + h.address + (h.tls ? ' (TLS)' : '') }),
      el('span', { class: 'settings', text: 'default pool ' + (h.default_pool || 'none') }),
      button('Graph', () => openGraph(id, 'http ' + h.address)),
      button('Add rule', () => ruleForm(base, h), 'admin')),
    figures(id, [['active', 'client conns'], ['rps', 'req/s'], ['2xx', '2xx/s'], ['3xx', '3xx/s'], ['4xx', '4xx/s'], ['5xx', '5xx/s'],
      ['p50_ms', 'p50 ms'], ['p99_ms', 'p99 ms'], ['inbps', 'in'], ['outbps', 'out'], ['requests', 'requests'], ['unrouted', 'unrouted']]),
    el('p', { class: 'classes', 'data-v': id + '|classes' }),
    el('div', { class: 'latency', 'data-latency': id }),
    el('h3', { text: 'rules (first match wins)' }),
    el('table', { class: 'rules' },
      el('thead', {}, el('tr', {}, ['rule', 'matches', 'pool', 'req/s', 'requests', ''].map((x) => el('th', { text: x })))),
      el('tbody', {}, rules)),
    pools);
}

// The latency histogram of an http service: one bar per bucket, by its share of requests.
function drawLatency(h) {
  const box = $('[data-latency="http/' + h.address + '"]');
  if (!box) return;
  const c = h.counters;
  const total = c.latency_counts.reduce((a, b) => a + b, 0);
  if (box.childElementCount !== c.latency_counts.length) {
    box.replaceChildren(el('span', { class: 'label', text: 'latency' }), ...c.latency_counts.map((_, i) => {
      const b = c.latency_bounds_us[i];
      const label = b === undefined ? '>' + fmtUs(c.latency_bounds_us[i - 1]) : '≤' + fmtUs(b);
      return el('div', { class: 'bar' }, el('div', { class: 'fill' }), el('span', { text: label }));
    }));
  }
  $$('.bar', box).forEach((bar, i) => {
    const share = total ? c.latency_counts[i] / total : 0;
    bar.firstChild.style.height = Math.round(share * 40) + 'px';
    bar.title = num(c.latency_counts[i]) + ' requests';
  });
}

function fmtUs(us) {
  return us >= 1000000 ? us / 1000000 + 's' : us >= 1000 ? us / 1000 + 'ms' : us + 'µs';
}

// ---- forms ----

// fields: [{name (the API's field path), label, value, type ('text', 'number', 'select', 'textarea'), options}]
function openForm(title, fields, submit) {
  const dlg = $('#dialog');
  $('#form-title').textContent = title;
  $('#form-error').textContent = '';
  $('#form-fields').replaceChildren(...fields.map((f) => {
    let input;
    if (f.type === 'select') {
      input = el('select', { name: f.name }, f.options.map((o) => el('option', { value: o, text: o, selected: String(f.value) === o })));
    } else if (f.type === 'textarea') {
      input = el('textarea', { name: f.name, rows: 3 });
      input.value = f.value === undefined || f.value === null ? '' : f.value;
    } else {
      input = el('input', { name: f.name, type: 'text', readonly: f.readonly, inputmode: f.type === 'number' ? 'numeric' : undefined });
      input.value = f.value === undefined || f.value === null ? '' : f.value;
    }
    return el('label', { 'data-field': f.name }, el('span', { text: f.label }), input, el('span', { class: 'err', 'data-err': f.name }));
  }));
  const form = $('#form');
  form.onsubmit = async (e) => {
    e.preventDefault();
    for (const x of $$('.err', form)) x.textContent = '';
    const vals = {};
    for (const f of fields) {
      const raw = form.elements[f.name].value.trim();
      if (raw === '') continue;
      vals[f.name] = f.type === 'number' && /^-?\d+$/.test(raw) ? Number(raw) : raw;
    }
    const r = await submit(vals);
    if (r.ok) { dlg.close(); return; }
    const err = (r.body && r.body.error) || { message: 'HTTP ' + r.status };
    const target = err.field && fieldFor(fields, err.field);
    if (target) $('[data-err="' + CSS.escape(target) + '"]', form).textContent = err.message;
    else $('#form-error').textContent = (err.field ? err.field + ': ' : '') + err.message;
  };
  $('#form-cancel').onclick = () => dlg.close();
  if (!dlg.open) dlg.showModal();
}

// The form field an API error names: the same path, or its last part.
function fieldFor(fields, apiField) {
  const names = fields.map((f) => f.name);
  if (names.includes(apiField)) return apiField;
  const tail = apiField.split('.').pop();
  return names.find((n) => n.split('.').pop() === tail) || (apiField === 'path' ? names.find((n) => n.endsWith('address')) : null);
}

function strip(vals, prefix) {
  const out = {};
  for (const [k, v] of Object.entries(vals)) out[k.startsWith(prefix) ? k.slice(prefix.length) : k] = v;
  return out;
}

const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'];

function serviceForm(s) {
  const edit = !!s;
  s = s || { protocol: 'tcp', address: '', scheduler: 'wlc' };
  openForm(edit ? 'Edit virtual service ' + s.address : 'Add virtual service', [
    { name: 'service.protocol', label: 'protocol', type: 'select', options: ['tcp', 'udp'], value: s.protocol },
    { name: 'service.address', label: 'address (IP:port)', value: s.address, readonly: edit },
    { name: 'service.scheduler', label: 'scheduler', type: 'select', options: SCHEDULERS, value: s.scheduler },
    { name: 'service.persistent', label: 'persistence timeout (s)', type: 'number', value: s.persistent },
    { name: 'service.netmask', label: 'persistence netmask', value: s.netmask },
    { name: 'service.sorry_server', label: 'sorry server', value: s.sorry_server },
    { name: 'service.max_connections', label: 'max connections', type: 'number', value: s.max_connections },
  ], (vals) => {
    const body = strip(vals, 'service.');
    if (s.sched_flags && s.sched_flags.length) body.sched_flags = s.sched_flags;
    return edit
      ? api('PUT', '/v1/services/' + s.protocol + '/' + enc(s.address), body)
      : api('POST', '/v1/services', body);
  });
}

function serverForm(svcPath, r, pool) {
  const edit = !!r;
  r = r || { address: '', weight: 1, method: pool ? undefined : 'fullnat', u_threshold: 0, l_threshold: 0, proxy_protocol: 'off' };
  const fields = [
    { name: 'server.address', label: 'address (IP:port)', value: r.address, readonly: edit },
    { name: 'server.weight', label: 'weight', type: 'number', value: edit ? r.configured_weight : r.weight },
  ];
  if (!pool) {
    fields.push(
      { name: 'server.method', label: 'forwarding', type: 'select', options: ['fullnat', 'masq', 'gate', 'tunnel'], value: r.method },
      { name: 'server.u_threshold', label: 'upper threshold', type: 'number', value: r.u_threshold },
      { name: 'server.l_threshold', label: 'lower threshold', type: 'number', value: r.l_threshold });
  }
  fields.push({ name: 'server.proxy_protocol', label: 'PROXY protocol', type: 'select', options: ['off', 'v1', 'v2'], value: r.proxy_protocol || 'off' });
  openForm(edit ? 'Edit real server ' + r.address : 'Add real server', fields, (vals) => {
    const body = strip(vals, 'server.');
    return edit
      ? api('PUT', svcPath + '/servers/' + enc(r.address), body)
      : api('POST', pool ? svcPath : svcPath + '/servers', body);
  });
}

function weightForm(path, r) {
  openForm('Weight of ' + r.address, [
    { name: 'server.weight', label: 'weight (0: drained)', type: 'number', value: r.configured_weight },
  ], (vals) => api('PUT', path, { address: r.address, weight: vals['server.weight'] }));
}

function ruleForm(base, h) {
  openForm('Add a rule to ' + h.address, [
    { name: 'name', label: 'name' },
    { name: 'match', label: 'matches, one a line (path^=/api/, host=example.com, method=GET, header:X=v)', type: 'textarea' },
    { name: 'pool', label: 'pool', type: 'select', options: h.pools.map((p) => p.name), value: h.pools.length ? h.pools[0].name : '' },
    { name: 'before', label: 'before the rule (empty: last)', type: 'select', options: [''].concat(h.rules.map((r) => r.name)), value: '' },
  ], (vals) => {
    const body = { name: vals.name || '', match: (vals.match || '').split('\n').map((x) => x.trim()).filter(Boolean), pool: vals.pool || '' };
    if (vals.before) body.before = vals.before;
    return api('POST', base + '/rules', body);
  });
}

function confirmDo(question, action) {
  openForm(question, [], () => action());
}

// A button's change: an error is flashed (forms show theirs beside the field); the next tick
// shows what changed.
function report(r) {
  if (!r.ok) {
    const m = (r.body && r.body.error) ? r.body.error.message : 'HTTP ' + r.status;
    flash(m, true);
  }
  return r;
}

function flash(text, bad) {
  const f = el('div', { class: 'flash' + (bad ? ' bad' : ''), text });
  document.body.append(f);
  setTimeout(() => f.remove(), 6000);
}

// ---- graphs ----

const GROUPS = [
  ['connections', ['active', 'inactive'], (v) => num(v)],
  ['connections per second', ['cps'], (v) => num(v, 1)],
  ['requests per second', ['rps'], (v) => num(v, 1)],
  ['status classes per second', ['1xx', '2xx', '3xx', '4xx', '5xx'], (v) => num(v, 1)],
  ['latency (ms)', ['p50_ms', 'p99_ms'], (v) => num(v, 1)],
  ['bytes per second', ['inbps', 'outbps'], (v) => bytes(v)],
  ['packets per second', ['inpps', 'outpps'], (v) => num(v, 1)],
];
const COLORS = ['#2a7ab0', '#d9822b', '#3a9d5d', '#c23b3b', '#7d55c7'];

async function openGraph(object, title) {
  const r = await api('GET', '/v1/history?object=' + enc(object));
  if (!r.ok) { flash('no history yet for ' + object, true); return; }
  closeGraph();
  const series = r.body.series;
  let start = Infinity, end = 0;
  for (const s of Object.values(series)) { start = Math.min(start, s.start); end = Math.max(end, s.start + s.values.length); }
  const xs = [];
  for (let t = start; t < end; t++) xs.push(t);
  const area = $('#graph-area');
  area.replaceChildren();
  const plots = [];
  const width = Math.max(300, Math.min(area.clientWidth || 900, 1200) / 2 - 20);
  for (const [name, keys, fmt] of GROUPS) {
    const present = keys.filter((k) => series[k]);
    if (!present.length) continue;
    const data = [xs.slice()].concat(present.map((k) => xs.map((t) => {
      const s = series[k];
      const v = s.values[t - s.start];
      return v === undefined || v === null ? null : v;
    })));
    const box = el('div', { class: 'graph' });
    area.append(box);
    const plot = new uPlot({
      title: name, width, height: 180,
      scales: { x: { time: true } },
      axes: [{}, { values: (u, vals) => vals.map(fmt), size: 70 }],
      series: [{}].concat(present.map((k, i) => ({ label: k, stroke: COLORS[i % COLORS.length], width: 1.5, value: (u, v) => fmt(v) }))),
    }, data, box);
    plots.push({ plot, keys: present, data });
  }
  graph = { object, plots };
  $('#graph-title').textContent = 'Last hour: ' + title;
  $('#graphs').hidden = false;
}

function appendGraph(t) {
  const figs = t.rates && t.rates[graph.object];
  if (!figs) return;
  for (const p of graph.plots) {
    const xs = p.data[0];
    if (xs.length && xs[xs.length - 1] >= t.t) continue;
    xs.push(t.t);
    p.keys.forEach((k, i) => p.data[i + 1].push(figs[k] === undefined ? null : figs[k]));
    if (xs.length > 3600) p.data.forEach((a) => a.shift());
    p.plot.setData(p.data);
  }
}

function closeGraph() {
  if (graph) graph.plots.forEach((p) => p.plot.destroy());
  graph = null;
  $('#graphs').hidden = true;
  $('#graph-area').replaceChildren();
}

// ---- events ----

async function loadEvents() {
  for (const path of ['/v1/events', '/v1/events?log=reload']) {
    const r = await api('GET', path);
    if (r.ok) for (const ev of r.body.events) addEvent(ev);
  }
  renderEvents();
}

// Health events and reloads are numbered apart.
function addEvent(ev) {
  events.set((ev.kind === 'reload' ? 'r' : 'h') + ev.seq, ev);
  if (events.size > 1000) events.delete(events.keys().next().value);
}

function renderEvents() {
  const sel = $('#event-filter');
  const names = new Set(Array.from(events.values()).map((e) => e.service).filter(Boolean));
  const have = new Set($$('option', sel).map((o) => o.value));
  for (const n of names) if (!have.has(n)) sel.append(el('option', { value: n, text: n }));
  const svc = sel.value, kind = $('#event-kind').value;
  const rows = Array.from(events.values()).sort((a, b) => b.at_unix_ms - a.at_unix_ms)
    .filter((e) => (!svc || e.service === svc) && (!kind || e.kind === kind))
    .slice(0, 500)
    .map((e) => el('tr', { class: 'ev-' + e.kind },
      el('td', { text: new Date(e.at_unix_ms).toLocaleString() }),
      el('td', { text: e.kind }), el('td', { text: e.service }), el('td', { text: e.real_server || '' }),
      el('td', { text: e.from || e.to ? e.from + ' → ' + e.to : '' }), el('td', { text: e.weight || '' }),
      el('td', { text: e.reason })));
  $('#events tbody').replaceChildren(...rows);
}

// ---- the configuration file ----

let digest = null;

async function showDiff() {
  const r = await api('GET', '/v1/config/diff');
  const msg = $('#config-msg');
  $('#save-btn').disabled = true;
  if (!r.ok) {
    msg.textContent = r.body && r.body.error ? r.body.error.message : 'HTTP ' + r.status;
    $('#diff').replaceChildren();
    $('#reload-would').replaceChildren();
    return;
  }
  const d = r.body;
  digest = d.digest;
  msg.textContent = d.changed ? d.file + ' differs from what runs.'
    : d.differs ? d.file + ' says what runs; a write would only change its layout.' : d.file + ' says what runs: nothing to write.';
  $('#save-btn').disabled = !d.differs;
  $('#diff').replaceChildren(...d.diff.map((l) => el('div', { class: l.op === '+' ? 'add' : l.op === '-' ? 'del' : 'same', text: l.op + ' ' + l.text })));
  $('#reload-would').replaceChildren(...(d.reload_would.length ? d.reload_would : ['change nothing']).map((x) => el('li', { text: x })));
}

async function save() {
  const r = await api('POST', '/v1/config/save', { digest });
  const msg = $('#config-msg');
  if (r.ok) {
    await showDiff();
    msg.textContent = 'Written to ' + r.body.file + ' (the previous file is ' + r.body.previous + ').';
  } else {
    msg.textContent = r.body && r.body.error ? r.body.error.message : 'HTTP ' + r.status;
  }
}

// ---- start ----

function tab(name) {
  for (const b of $$('#tabs button')) b.classList.toggle('on', b.dataset.tab === name);
  for (const s of $$('.tab')) s.hidden = s.id !== 'tab-' + name;
  if (name === 'config') showDiff();
}

document.addEventListener('DOMContentLoaded', async () => {
  for (const b of $$('#tabs button')) b.addEventListener('click', () => tab(b.dataset.tab));
  $('#login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const err = $('[data-err="token"]');
    err.textContent = '';
    const r = await api('POST', '/ui/login', { token: $('#token').value });
    $('#token').value = '';
    if (r.ok) loggedIn(r.body);
    else err.textContent = r.body && r.body.error ? r.body.error.message : 'HTTP ' + r.status;
  });
  $('#logout').addEventListener('click', async () => { await api('POST', '/ui/logout'); showLogin(); });
  $('#add-service').addEventListener('click', () => serviceForm(null));
  $('#graph-close').addEventListener('click', closeGraph);
  $('#event-filter').addEventListener('change', renderEvents);
  $('#event-kind').addEventListener('change', renderEvents);
  $('#diff-btn').addEventListener('click', showDiff);
  $('#save-btn').addEventListener('click', save);
  const r = await api('GET', '/ui/session');
  if (r.ok) loggedIn(r.body); else showLogin();
});
