// Velo's page. Every name, label and message goes into the page as text
// (textContent, never innerHTML), so a label with HTML in it shows as text.
'use strict';

let csrf = '';
let selected = '';
let status = { pools: [], projects: [] };
let shown = ''; // the status last drawn, to redraw only on a change
let sizes = {}; // branch name -> exclusive_bytes, from the last sized status
let sizedAt = 0;
const sizeEvery = 30000; // sizes walk files on btrfs, XFS and copy: not every poll

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
  if (res.status === 401) { $('signin').hidden = false; $('app').hidden = true; throw new Error('not signed in'); }
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

function duration(s) {
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
  return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
}

function utc(t) { return new Date(t).toISOString().replace('.000Z', 'Z'); }

function expiry(b) {
  const parts = [];
  if (b.protected) parts.push('protected');
  if (b.expires_at) parts.push(b.expires_in_seconds > 0 ? 'expires in ' + duration(b.expires_in_seconds) : 'expired');
  return parts.join(', ');
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
  tr.dataset.state = b.state;
  if (b.name === selected) tr.className = 'selected';
  const name = el('a', { href: '#', textContent: b.name, className: 'branch-name' });
  name.addEventListener('click', (ev) => { ev.preventDefault(); select(b.name); });
  const depth = depthOf(b);
  const cell = el('td', {}, '\u00a0'.repeat(2 * depth) + (b.parent ? '↳ ' : ''), name);
  const st = el('td', { className: 'state state-' + b.state },
    el('span', { className: 'dot' }), b.state + (b.problem ? ' (' + b.problem + ')' : ''));
  const running = b.state === 'running';
  const actions = el('td', { className: 'actions' },
    running ? button('stop', 'stop its server', () => act('stop ' + b.name, () => api('POST', branchPath(b.name) + '/stop')))
            : button('start', 'start its server', () => act('start ' + b.name, () => api('POST', branchPath(b.name) + '/start'))),
    button('reset', "replace its data with its parent's", () => {
      if (!confirm('Reset ' + b.name + "? Its data is replaced by its parent's current data.")) return;
      act('reset ' + b.name, () => api('POST', branchPath(b.name) + '/reset', {}));
    }),
    button('delete', 'delete it and its data', () => {
      if (!confirm('Delete ' + b.name + ' and its data?')) return;
      if (selected === b.name) { selected = ''; $('detail-section').hidden = true; }
      act('delete ' + b.name, () => api('DELETE', branchPath(b.name)));
    }));
  const size = b.exclusive_bytes != null ? b.exclusive_bytes : sizes[b.name];
  tr.append(cell, st, el('td', { textContent: b.port, className: 'port' }), el('td', { textContent: bytes(size), className: 'size' }),
    el('td', { textContent: expiry(b), className: 'expiry' }), actions);
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
    let info = 'PostgreSQL ' + p.pg_version + ' on ' + p.storage;
    if (p.source) {
      info += ', ' + p.source.mode + ' import';
      if (p.source.following) info += ', ' + (p.source.state || '') + (p.source.lag_bytes != null ? ', lag ' + bytes(p.source.lag_bytes) : '');
    }
    const head = el('div', { className: 'project' }, el('span', { className: 'project-name', textContent: p.name }), el('span', { className: 'hint', textContent: ' ' + info }));
    head.dataset.project = p.name;
    tree.append(head);
    const t = el('table', {}, el('tr', {}, ...['Branch', 'State', 'Port', 'Size', 'Expiry', ''].map((h) => el('th', { textContent: h }))));
    for (const b of p.branch_list) t.append(branchRow(b));
    tree.append(t);
  }
  $('pools').textContent = status.pools.map((p) => p.storage + ' ' + p.name + ': ' + bytes(p.used_bytes) + ' used, ' + bytes(p.free_bytes) + ' free').join(' · ');
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

// reachable is the range a point-in-time branch of name can reach, from
// its WAL archive (velo wal info).
async function reachable(name) {
  const w = await api('GET', branchPath(name) + '/wal');
  const info = Array.isArray(w) ? w.find((x) => x.branch === name) || w[0] : w;
  if (!info || !info.earliest_pitr) return null;
  return { from: info.earliest_pitr, to: info.latest_pitr || new Date().toISOString(), running: info.running };
}

async function showRange() {
  const parent = $('create-parent').value;
  $('pitr-range').textContent = '';
  if (!parent) return;
  try {
    const r = await reachable(parent);
    $('pitr-range').textContent = r ? 'reachable: ' + utc(r.from) + ' to ' + (r.running ? 'now' : utc(r.to)) : 'no point in time reachable yet (no archived WAL)';
  } catch (e) { $('pitr-range').textContent = e.message; }
}

async function load() {
  try {
    const sized = Date.now() - sizedAt > sizeEvery;
    const s = await api('GET', sized ? '/status?size=true' : '/status');
    if (sized) {
      sizedAt = Date.now();
      sizes = {};
      for (const p of s.projects) for (const b of p.branch_list) if (b.exclusive_bytes != null) sizes[b.name] = b.exclusive_bytes;
    }
    status = s;
    const key = JSON.stringify(s.projects.map((p) => [p.name, p.source, p.branch_list.map((b) => [b.name, b.state, b.problem, b.port, b.parent, b.protected, b.expires_at, sizes[b.name]])]));
    if (key !== shown) { shown = key; render(); }
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) { say(e.message, true); }
}

// localValue is t as a datetime-local input shows it.
function localValue(t) {
  const d = new Date(t);
  const pad = (n) => String(n).padStart(2, '0');
  return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' + pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
}

async function select(name) {
  selected = name;
  shown = '';
  render();
  $('detail-section').hidden = false;
  $('detail-title').textContent = name;
  $('conn-url').value = '';
  $('diff').replaceChildren();
  $('snapshots').replaceChildren();
  clearPicker();
  connURL = '';
  $('conn-show').textContent = 'Show';
  try {
    const c = await api('GET', branchPath(name) + '/password');
    if (selected === name) {
      connURL = c.url;
      // The password shows only when asked (Show); Copy copies it all.
      $('conn-url').value = masked(c.url, c.password);
    }
  } catch (e) { say(e.message, true); }
  await Promise.all([loadSnapshots(), loadPicker()]);
}

function clearPicker() {
  const at = $('pit-at');
  $('pit-range').textContent = '';
  delete $('pit-range').dataset.branch;
  at.removeAttribute('min');
  at.removeAttribute('max');
  at.value = '';
}

// loadPicker shows the range the selected branch's history reaches; an
// answer for a branch no longer selected is dropped.
async function loadPicker() {
  const name = selected;
  const at = $('pit-at');
  clearPicker();
  if (!name) return;
  try {
    const r = await reachable(name);
    if (selected !== name) return;
    $('pit-range').dataset.branch = name;
    if (!r) { $('pit-range').textContent = 'no point in time reachable yet (no archived WAL)'; return; }
    $('pit-range').textContent = 'reachable: ' + utc(r.from) + ' to ' + (r.running ? 'now' : utc(r.to)) + ' (UTC)';
    $('pit-range').dataset.from = r.from;
    $('pit-range').dataset.to = r.to;
    at.min = localValue(r.from);
    if (!r.running) at.max = localValue(r.to);
    if (!at.value) at.value = localValue(r.running ? new Date() : r.to);
  } catch (e) { $('pit-range').textContent = e.message; }
}

// pickedTime is the picker's moment in RFC 3339 (UTC), or '' for none.
function pickedTime() {
  const v = $('pit-at').value;
  if (!v) return '';
  return new Date(v).toISOString();
}

async function loadSnapshots() {
  const name = selected;
  const ul = $('snapshots');
  if (!name) { ul.replaceChildren(); return; }
  const snaps = await api('GET', branchPath(name) + '/snapshots');
  if (selected !== name) return;
  ul.replaceChildren();
  if (!snaps.length) ul.append(el('li', { className: 'hint', textContent: 'no snapshots' }));
  for (const s of snaps) {
    const li = el('li', {}, el('code', { textContent: s.id.slice(0, 12) }), ' ', el('span', { className: 'label', textContent: s.label || '' }),
      ' ', el('span', { className: 'hint', textContent: utc(s.created_at) + ' · ' + bytes(s.exclusive_bytes) }), ' ',
      button('restore', 'put the branch back to this snapshot (the replaced state is kept as a branch)', () => {
        if (!confirm('Restore ' + selected + ' to snapshot ' + s.id.slice(0, 12) + '? Its current state is kept as a new branch.')) return;
        act('restore ' + selected, async () => { await api('POST', branchPath(selected) + '/restore', { snapshot: s.id }); await loadSnapshots(); });
      }),
      button('delete', 'delete the snapshot', () => {
        if (!confirm('Delete snapshot ' + s.id.slice(0, 12) + '?')) return;
        act('delete snapshot', async () => { await api('DELETE', '/snapshots/' + encodeURIComponent(s.id)); await loadSnapshots(); });
      }));
    li.dataset.snapshot = s.id;
    ul.append(li);
  }
}

async function showDiff() {
  const out = $('diff');
  out.replaceChildren(el('p', { textContent: 'comparing…' }));
  try {
    const d = await api('GET', branchPath(selected) + '/diff?rows=5');
    const parts = [el('p', { className: 'diff-head', textContent: d.same ? d.new + ' is the same as ' + d.old : d.new + ' against ' + d.old })];
    for (const c of d.schema || []) parts.push(el('div', { className: 'diff-schema diff-' + c.change, textContent: c.change + ' ' + c.kind + ' ' + c.name }));
    for (const t of d.tables || []) {
      if (!t.rows_added && !t.rows_deleted && !t.rows_changed) continue;
      parts.push(el('div', { className: 'diff-table' }, el('code', { textContent: t.table }),
        ' ', el('span', { className: 'diff-added', textContent: '+' + t.rows_added }),
        ' ', el('span', { className: 'diff-changed', textContent: '~' + t.rows_changed }),
        ' ', el('span', { className: 'diff-dropped', textContent: '-' + t.rows_deleted })));
    }
    if (d.sketch && d.sketch.length) parts.push(el('pre', { className: 'sketch', textContent: d.sketch.join('\n') }));
    for (const n of d.notes || []) parts.push(el('p', { className: 'hint', textContent: n }));
    out.replaceChildren(...parts);
  } catch (e) { out.replaceChildren(el('p', { className: 'error', textContent: e.message })); }
}

let connURL = ''; // the selected branch's connection string, with its password

function masked(url, password) {
  return password ? url.replace(':' + encodeURIComponent(password) + '@', ':***@').replace(':' + password + '@', ':***@') : url;
}

async function copyURL() {
  try { await navigator.clipboard.writeText(connURL); } catch (e) {
    // Without the asynchronous clipboard (plain http on another host),
    // the old way: a selected text field and the copy command.
    const t = el('textarea', { value: connURL });
    document.body.append(t);
    t.select();
    document.execCommand('copy');
    t.remove();
  }
  say('copied');
}

function toggleURL() {
  const showing = $('conn-show').textContent === 'Hide';
  $('conn-url').value = showing ? masked(connURL, new URL(connURL).password) : connURL;
  $('conn-show').textContent = showing ? 'Show' : 'Hide';
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
  $('conn-show').addEventListener('click', toggleURL);
  $('diff-run').addEventListener('click', showDiff);
  $('snap-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const label = $('snap-label').value;
    act('snapshot ' + selected, async () => { await api('POST', branchPath(selected) + '/snapshots', label ? { label } : {}); await loadSnapshots(); });
  });
  $('pit-branch').addEventListener('click', () => {
    const at = pickedTime();
    const name = $('pit-name').value;
    const [project] = selected.split('/');
    if (!at || !name) { say('pick a moment and a name for the new branch', true); return; }
    act('create ' + project + '/' + name + ' at ' + at, () => api('POST', '/projects/' + encodeURIComponent(project) + '/branches', { name, parent: selected, pitr: at }));
  });
  $('pit-restore').addEventListener('click', () => {
    const at = pickedTime();
    if (!at) { say('pick a moment', true); return; }
    if (!confirm('Restore ' + selected + ' to ' + at + '? Its current state is kept as a new branch.')) return;
    act('restore ' + selected + ' to ' + at, async () => { await api('POST', branchPath(selected) + '/restore', { to: at }); await loadPicker(); });
  });
  $('doctor-run').addEventListener('click', async () => {
    const ul = $('doctor');
    ul.replaceChildren(el('li', { textContent: 'checking…' }));
    try {
      const d = await api('GET', '/doctor');
      ul.replaceChildren(...d.findings.filter((f) => f.status !== 'ok').map((f) =>
        el('li', { className: 'finding finding-' + f.status, textContent: f.status + ': ' + f.subject + ': ' + f.message + (f.fix ? ' (' + f.fix + ')' : '') })));
      if (!ul.children.length) ul.append(el('li', { className: 'finding', textContent: 'no problems (' + d.findings.length + ' checks)' }));
    } catch (e) { ul.replaceChildren(el('li', { textContent: e.message })); }
  });
  try {
    const s = await api('GET', '/session');
    csrf = s.csrf || '';
  } catch (e) { return; }
  $('app').hidden = false;
  await load();
  showRange();
  setInterval(load, 3000);
});
