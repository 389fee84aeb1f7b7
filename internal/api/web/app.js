// Velo's page. Every name, label and message goes into the page as text
// (textContent, never innerHTML), so a label with HTML in it shows as text.
'use strict';

let csrf = '';
let selected = '';
let status = { projects: [] };

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children) e.append(c);
  return e;
}

function say(text, isError) {
  $('message').textContent = text;
  $('message').className = isError ? 'error' : '';
}

// api calls /api/v1 with the session cookie; changing calls carry the
// CSRF token and stream their steps into #steps.
async function api(method, path, body) {
  const headers = {};
  const changing = method !== 'GET';
  if (changing) {
    headers['X-Velo-CSRF'] = csrf;
    headers['Accept'] = 'application/x-ndjson';
  }
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch('/api/v1' + path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) { $('signin').hidden = false; throw new Error('not signed in'); }
  if (!changing || res.headers.get('Content-Type') !== 'application/x-ndjson') {
    if (res.status === 204) return null;
    const doc = await res.json();
    if (!res.ok) throw new Error(doc.error);
    return doc;
  }
  $('steps').textContent = method + ' ' + path + '\n';
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '', last = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (line.step) $('steps').textContent += line.step + '\n';
      if (line.warning) $('steps').textContent += 'warning: ' + line.warning + '\n';
      last = line;
    }
  }
  if (!last) throw new Error('no answer');
  if (last.error) throw new Error(last.error);
  return last.result;
}

function bytes(n) {
  if (n == null) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}

function expiry(b) {
  if (!b.expires_at) return b.protected ? 'protected' : '';
  return 'expires ' + new Date(b.expires_at).toISOString().replace('.000Z', 'Z');
}

async function act(label, fn) {
  try {
    say(label + '…');
    await fn();
    say(label + ': done');
  } catch (e) {
    say(label + ': ' + e.message, true);
  }
  await load();
}

function branchPath(name) {
  const [p, b] = name.split('/');
  return '/branches/' + encodeURIComponent(p) + '/' + encodeURIComponent(b);
}

function button(text, title, fn) {
  const b = el('button', { type: 'button', textContent: text, title });
  b.dataset.action = text;
  b.addEventListener('click', fn);
  return b;
}

function branchRow(b) {
  const tr = el('tr');
  tr.dataset.branch = b.name;
  if (b.name === selected) tr.className = 'selected';
  const name = el('a', { href: '#', textContent: b.name, className: 'branch-name' });
  name.addEventListener('click', (ev) => { ev.preventDefault(); select(b.name); });
  const depth = depthOf(b);
  const cell = el('td', {}, '\u00a0'.repeat(2 * depth) + (b.parent ? '↳ ' : ''), name);
  const st = el('td', { textContent: b.state + (b.problem ? ' (' + b.problem + ')' : ''), className: 'state state-' + b.state });
  const running = b.state === 'running';
  const actions = el('td', {},
    running ? button('stop', 'stop its server', () => act('stop ' + b.name, () => api('POST', branchPath(b.name) + '/stop')))
            : button('start', 'start its server', () => act('start ' + b.name, () => api('POST', branchPath(b.name) + '/start'))),
    ' ',
    button('reset', "replace its data with its parent's", () => {
      if (!confirm('Reset ' + b.name + "? Its data is replaced by its parent's current data.")) return;
      act('reset ' + b.name, () => api('POST', branchPath(b.name) + '/reset', {}));
    }),
    ' ',
    button('delete', 'delete it and its data', () => {
      if (!confirm('Delete ' + b.name + ' and its data?')) return;
      if (selected === b.name) selected = '';
      act('delete ' + b.name, () => api('DELETE', branchPath(b.name)));
    }));
  tr.append(cell, st, el('td', { textContent: b.port }), el('td', { textContent: bytes(b.exclusive_bytes) }),
    el('td', { textContent: expiry(b) }), actions);
  return tr;
}

let parents = {};
function depthOf(b) {
  let d = 0;
  for (let p = b.parent; p && parents[p] !== undefined && d < 64; p = parents[p]) d++;
  return d;
}

function render() {
  const tree = $('tree');
  tree.replaceChildren();
  parents = {};
  for (const p of status.projects) for (const b of p.branch_list) parents[b.name] = b.parent || '';
  if (status.projects.length === 0) tree.append(el('p', { textContent: 'No projects yet: velo project create NAME' }));
  for (const p of status.projects) {
    let info = 'PG ' + p.pg_version + ', ' + p.storage;
    if (p.source) {
      info += ', ' + p.source.mode + ' import';
      if (p.source.following) info += ', ' + (p.source.state || '') + (p.source.lag_bytes != null ? ', lag ' + bytes(p.source.lag_bytes) : '');
    }
    tree.append(el('div', { className: 'project', textContent: p.name + ' — ' + info }));
    const t = el('table', {}, el('tr', {}, ...['Branch', 'State', 'Port', 'Size', 'Expiry', ''].map((h) => el('th', { textContent: h }))));
    for (const b of p.branch_list) t.append(branchRow(b));
    tree.append(t);
  }
  const proj = $('create-project');
  const keep = proj.value;
  proj.replaceChildren(...status.projects.map((p) => el('option', { value: p.name, textContent: p.name })));
  if (keep && status.projects.some((p) => p.name === keep)) proj.value = keep;
  fillParents();
}

function fillParents() {
  const p = status.projects.find((x) => x.name === $('create-project').value);
  const sel = $('create-parent');
  const keep = sel.value;
  sel.replaceChildren(...(p ? p.branch_list : []).map((b) => el('option', { value: b.name, textContent: b.name })));
  if (keep && p && p.branch_list.some((b) => b.name === keep)) sel.value = keep;
}

async function showRange() {
  const parent = $('create-parent').value;
  $('pitr-range').textContent = '';
  if (!parent) return;
  try {
    const w = await api('GET', branchPath(parent) + '/wal');
    const info = Array.isArray(w) ? w[0] : w;
    if (info && info.earliest_pitr) {
      $('pitr-range').textContent = 'reachable: ' + info.earliest_pitr + ' to ' + (info.latest_pitr || 'now');
      $('create-pitr').dataset.min = info.earliest_pitr;
    } else {
      $('pitr-range').textContent = 'no point in time reachable yet (no archived WAL)';
    }
  } catch (e) { $('pitr-range').textContent = e.message; }
}

async function load() {
  try {
    status = await api('GET', '/status');
    render();
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) { say(e.message, true); }
}

async function select(name) {
  selected = name;
  render();
  $('detail-section').hidden = false;
  $('detail-title').textContent = name;
  $('conn-url').value = '';
  try {
    const c = await api('GET', branchPath(name) + '/password');
    $('conn-url').value = c.url;
  } catch (e) { say(e.message, true); }
  await loadSnapshots();
}

async function loadSnapshots() {
  const ul = $('snapshots');
  ul.replaceChildren();
  if (!selected) return;
  const snaps = await api('GET', branchPath(selected) + '/snapshots');
  for (const s of snaps) {
    const li = el('li', {}, el('code', { textContent: s.id.slice(0, 12) }), ' ', el('span', { className: 'label', textContent: s.label || '' }),
      ' ', el('span', { className: 'hint', textContent: new Date(s.created_at).toISOString() }), ' ',
      button('delete', 'delete the snapshot', () => {
        if (!confirm('Delete snapshot ' + s.id.slice(0, 12) + '?')) return;
        act('delete snapshot', async () => { await api('DELETE', '/snapshots/' + encodeURIComponent(s.id)); await loadSnapshots(); });
      }));
    ul.append(li);
  }
}

async function copyURL() {
  const u = $('conn-url');
  try { await navigator.clipboard.writeText(u.value); say('copied'); } catch (e) {
    u.select(); document.execCommand('copy'); say('copied');
  }
}

window.addEventListener('DOMContentLoaded', async () => {
  $('create-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const project = $('create-project').value;
    const body = { name: $('create-name').value };
    if ($('create-parent').value) body.parent = $('create-parent').value;
    if ($('create-pitr').value.trim()) body.pitr = $('create-pitr').value.trim();
    act('create ' + project + '/' + body.name, () => api('POST', '/projects/' + encodeURIComponent(project) + '/branches', body));
  });
  $('create-project').addEventListener('change', () => { fillParents(); showRange(); });
  $('create-parent').addEventListener('change', showRange);
  $('conn-copy').addEventListener('click', copyURL);
  $('snap-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const label = $('snap-label').value;
    act('snapshot ' + selected, async () => { await api('POST', branchPath(selected) + '/snapshots', label ? { label } : {}); await loadSnapshots(); });
  });
  $('doctor-run').addEventListener('click', async () => {
    const ul = $('doctor');
    ul.replaceChildren(el('li', { textContent: 'checking…' }));
    try {
      const d = await api('GET', '/doctor');
      ul.replaceChildren(...d.findings.filter((f) => f.status !== 'ok').map((f) =>
        el('li', { className: 'finding-' + f.status, textContent: f.status + ': ' + f.subject + ': ' + f.message + (f.fix ? ' (' + f.fix + ')' : '') })));
      if (!ul.children.length) ul.append(el('li', { textContent: 'no problems (' + d.findings.length + ' checks)' }));
    } catch (e) { ul.replaceChildren(el('li', { textContent: e.message })); }
  });
  try {
    const s = await api('GET', '/session');
    csrf = s.csrf || '';
  } catch (e) { return; }
  await load();
  showRange();
  setInterval(load, 3000);
});
