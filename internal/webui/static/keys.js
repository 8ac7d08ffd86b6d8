// Keys page: LiteLLM's virtual keys (POST /key/generate, /key/update,
// /key/block, /key/unblock, /key/delete, GET /key/list) and the teams they
// belong to (GET /team/list, POST /team/new). A new key's secret is shown
// once, right after it is made: the gateway keeps only its hash. Every
// error is the gateway's own message, word for word.

import { h, setStatus, api, poll, fieldId, readNumber, splitList, fmtMoney, fmtCount, fmtDate } from './lib.js';

const pageSize = 25;

// keyFields are the key form's fields, named as /key/generate and
// /key/update name them. kind decides the input and how it is read.
const keyFields = [
  { key: 'key_alias', label: 'Key alias', hint: 'A unique name, e.g. team-a-ci; it names the key in the list and in the usage.' },
  { key: 'team_id', label: 'Team', kind: 'team', hint: 'A team key may call only its team\'s models, within the team\'s limits.' },
  { key: 'models', label: 'Models', kind: 'list', hint: 'Model groups, aliases or access groups, separated by commas. Empty: every model (with a team: the team\'s).' },
  { key: 'rpm_limit', label: 'Requests per minute (rpm_limit)', kind: 'int', hint: 'Optional, over all replicas.' },
  { key: 'tpm_limit', label: 'Tokens per minute (tpm_limit)', kind: 'int', hint: 'Optional, over all replicas.' },
  { key: 'max_parallel_requests', label: 'Max parallel requests', kind: 'int', hint: 'Optional cap on requests in flight.' },
  { key: 'max_budget', label: 'Max budget (USD)', kind: 'number', hint: 'Optional: requests are refused once the key has spent this much.' },
  { key: 'budget_duration', label: 'Budget period', hint: 'Optional: how often spend resets, e.g. 1h, 7d, 30d, 1mo. Empty: never.' },
  { key: 'duration', label: 'Expires after', hint: 'Optional, from now: e.g. 12h, 30d, 2w, 1mo. Empty: never expires.' },
  { key: 'metadata', label: 'Metadata (JSON)', kind: 'json', hint: 'Optional JSON object, e.g. {"owner": "ana"}.' },
];

// listKeys reads the keys, 100 a page, up to max of them; total is null
// when there were more.
export async function listKeys(max) {
  const out = [];
  for (let page = 1; out.length < max; page++) {
    const r = await api('GET', `/key/list?return_full_object=true&size=100&page=${page}`);
    out.push(...r.keys);
    if (page >= r.total_pages) return { keys: out, total: r.total_count };
  }
  return { keys: out.slice(0, max), total: null };
}

// listTeams reads every team (GET /team/list answers 100 a page).
export async function listTeams() {
  const out = [];
  for (let page = 1; page <= 100; page++) {
    const r = await api('GET', `/team/list?page=${page}`);
    out.push(...r);
    if (r.length < 100) break;
  }
  return out;
}

export function teamName(t) { return t.team_alias ? `${t.team_alias} (${t.team_id})` : t.team_id; }
function keyLabel(k) { return k.key_alias || k.key_name; }

// servedModels lists the model groups and access groups a key may name.
async function servedModels() {
  const info = await api('GET', '/model/info');
  const groups = new Set(), access = new Set();
  for (const m of info.data) {
    groups.add(m.model_name);
    for (const a of (m.model_info && m.model_info.access_groups) || []) access.add(a);
  }
  return { groups: [...groups].sort(), access: [...access].sort() };
}

// readField reads one input as the API takes it, or throws a message.
function readField(f, input) {
  switch (f.kind) {
    case 'int': return readNumber(input, true);
    case 'number': return readNumber(input, false);
    case 'list': return splitList(input.value);
    case 'json': {
      const raw = input.value.trim();
      if (raw === '') return null;
      let v;
      try { v = JSON.parse(raw); } catch (e) { throw new Error(`Not valid JSON: ${e.message}`); }
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('Enter a JSON object, like {"owner": "ana"}.');
      return v;
    }
    default: return input.value.trim() || null;
  }
}

// shownValue is what a field's input starts with when editing key k.
function shownValue(f, k) {
  const v = k[f.key];
  if (f.key === 'duration' || v === null || v === undefined) return '';
  if (f.kind === 'list') return v.join(', ');
  if (f.kind === 'json') return Object.keys(v).length ? JSON.stringify(v) : '';
  return String(v);
}

function keyForm(ctx, editing, done) {
  const form = h('form', { class: 'card', id: 'key-form', novalidate: true, 'aria-labelledby': 'key-form-title' });
  const status = h('p', { class: 'status', role: 'alert', id: 'key-form-status' });
  const inputs = {}, errs = {};
  const grid = h('div', { class: 'grid' });
  for (const f of keyFields) {
    const id = fieldId('key-' + f.key);
    let hint = f.hint;
    let input;
    if (f.kind === 'team') {
      input = h('select', { id, name: f.key },
        h('option', { value: '' }, 'No team'),
        ctx.teams.map((t) => h('option', { value: t.team_id }, teamName(t))));
      input.value = editing ? (editing.team_id || '') : '';
    } else if (f.kind === 'json') {
      input = h('textarea', { id, name: f.key, rows: 2, spellcheck: 'false' });
      input.value = editing ? shownValue(f, editing) : '';
    } else {
      const num = f.kind === 'int' || f.kind === 'number';
      input = h('input', {
        id, name: f.key, type: num ? 'number' : 'text', min: num ? '0' : undefined,
        step: f.kind === 'int' ? '1' : (num ? 'any' : undefined), autocomplete: 'off',
        value: editing ? shownValue(f, editing) : '',
      });
    }
    if (f.kind === 'list' && ctx.models.groups.length) {
      hint += ` Served here: ${ctx.models.groups.join(', ')}` + (ctx.models.access.length ? `; access groups: ${ctx.models.access.join(', ')}.` : '.');
    }
    if (editing && f.key === 'duration') {
      hint = `Now ${editing.expires ? 'expires ' + fmtDate(editing.expires) : 'never expires'}. A new duration counts from now; -1 for never; empty keeps the expiry.`;
    }
    input.dataset.initial = input.value;
    input.setAttribute('aria-describedby', `${id}-hint ${id}-err`);
    inputs[f.key] = input;
    errs[f.key] = h('p', { class: 'error', id: `${id}-err`, hidden: true });
    grid.append(h('div', { class: 'field' }, h('label', { for: id }, f.label), input,
      h('p', { class: 'hint', id: `${id}-hint` }, hint), errs[f.key]));
  }
  const title = editing ? `Edit key ${keyLabel(editing)}` : 'Create a key';
  form.append(h('h2', { id: 'key-form-title' }, title), grid, status,
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, editing ? 'Save changes' : 'Create key'),
      h('button', { type: 'button', class: 'secondary', onclick: () => done(null) }, 'Cancel')));

  const clear = () => {
    for (const k of Object.keys(errs)) { errs[k].hidden = true; errs[k].textContent = ''; inputs[k].removeAttribute('aria-invalid'); }
    setStatus(status, '', '');
  };
  const fail = (key, message) => {
    if (!errs[key]) return;
    errs[key].textContent = message;
    errs[key].hidden = false;
    inputs[key].setAttribute('aria-invalid', 'true');
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear();
    const body = {};
    let bad = false;
    for (const f of keyFields) {
      const input = inputs[f.key];
      let v;
      try { v = readField(f, input); } catch (e) { fail(f.key, e.message); bad = true; continue; }
      if (editing) {
        // Only what changed is sent; an emptied field is cleared (null),
        // an emptied expiry is left as it is.
        if (input.value === input.dataset.initial) continue;
        if (f.key === 'duration' && v === null) continue;
        body[f.key] = v;
      } else if (v !== null && !(Array.isArray(v) && v.length === 0)) {
        body[f.key] = v;
      }
    }
    if (bad) { setStatus(status, 'error', 'Some fields need a fix: see the messages next to them.'); return; }
    if (editing && Object.keys(body).length === 0) { setStatus(status, '', 'Nothing to save: no field was changed.'); return; }
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      if (editing) {
        await api('POST', '/key/update', { key: editing.token, ...body });
        done({ message: `Saved key ${body.key_alias || keyLabel(editing)}.` });
      } else {
        done({ created: await api('POST', '/key/generate', body) });
      }
    } catch (e) {
      // The gateway's message as it is, and at its field when it names one.
      setStatus(status, 'error', e.message);
      if (e.param) fail(e.param, e.message);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// copyText puts an input's text on the clipboard: through the Clipboard
// API where the page may use it (HTTPS, localhost), else by selecting the
// text and asking the browser to copy it.
async function copyText(input) {
  try {
    await navigator.clipboard.writeText(input.value);
    return true;
  } catch { /* not allowed here: try the selection */ }
  input.focus();
  input.select();
  try { return document.execCommand('copy'); } catch { return false; }
}

// secretCard shows a new key's secret, once, with a copy button.
function secretCard(created, dismiss) {
  const input = h('input', { id: 'new-key-secret', type: 'text', readonly: true, class: 'mono', value: created.key, 'aria-describedby': 'new-key-warning', autocomplete: 'off', spellcheck: 'false' });
  const copied = h('p', { class: 'status', role: 'status', id: 'copy-status' });
  const copy = h('button', {
    type: 'button', id: 'copy-key',
    onclick: async () => {
      if (await copyText(input)) setStatus(copied, 'ok', 'Copied to the clipboard.');
      else setStatus(copied, 'error', 'The browser did not let the page copy: the key is selected, copy it with Ctrl+C (⌘C).');
    },
  }, 'Copy key');
  return h('section', { class: 'card secret', id: 'new-key', 'aria-labelledby': 'new-key-title' },
    h('h2', { id: 'new-key-title' }, `Key ${keyLabel(created)} created`),
    h('p', { class: 'warn', id: 'new-key-warning' },
      'Copy the key now: you will not see it again. The gateway keeps only its hash, so a lost key cannot be shown; create another.'),
    h('div', { class: 'field' }, h('label', { for: 'new-key-secret' }, 'Secret key'), h('div', { class: 'secret-row' }, input, copy)),
    copied,
    h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', id: 'hide-key', onclick: dismiss }, 'Done: hide the key')));
}

function limitsOf(k) {
  const parts = [];
  if (k.rpm_limit !== null && k.rpm_limit !== undefined) parts.push(`${fmtCount(k.rpm_limit)} rpm`);
  if (k.tpm_limit !== null && k.tpm_limit !== undefined) parts.push(`${fmtCount(k.tpm_limit)} tpm`);
  if (k.max_parallel_requests !== null && k.max_parallel_requests !== undefined) parts.push(`${fmtCount(k.max_parallel_requests)} parallel`);
  for (const [kind, m] of [['rpm', k.model_rpm_limit], ['tpm', k.model_tpm_limit]]) {
    for (const [model, n] of Object.entries(m || {})) parts.push(`${model}: ${fmtCount(n)} ${kind}`);
  }
  return parts;
}

function stateOf(k, now) {
  if (k.blocked) return { cls: 'unhealthy', text: 'Blocked', detail: k.expires ? `expires ${fmtDate(k.expires)}` : '' };
  if (k.expires && new Date(k.expires).getTime() <= now) return { cls: 'unhealthy', text: 'Expired', detail: fmtDate(k.expires) };
  return { cls: 'healthy', text: 'Active', detail: k.expires ? `expires ${fmtDate(k.expires)}` : 'never expires' };
}

// teamsCard lists the teams and creates one (alias and models; the rest
// through POST /team/update or a script). show(teams) redraws the list
// only, so a refresh never clears what is being typed in the form.
function teamsCard(changed) {
  const status = h('p', { class: 'status', role: 'status', id: 'team-status' });
  const alias = h('input', { id: 'team-alias', type: 'text', autocomplete: 'off', 'aria-describedby': 'team-alias-hint' });
  const models = h('input', { id: 'team-models', type: 'text', autocomplete: 'off', 'aria-describedby': 'team-models-hint' });
  const form = h('form', { class: 'inline', id: 'team-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'team-alias' }, 'Team alias'), alias,
      h('p', { class: 'hint', id: 'team-alias-hint' }, 'e.g. research; the team id is generated.')),
    h('div', { class: 'field' }, h('label', { for: 'team-models' }, 'Team models'), models,
      h('p', { class: 'hint', id: 'team-models-hint' }, 'Separated by commas; empty: every model.')),
    h('button', { type: 'submit', id: 'create-team' }, 'Create team'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {};
    if (alias.value.trim()) body.team_alias = alias.value.trim();
    const ms = splitList(models.value);
    if (ms.length) body.models = ms;
    try {
      const t = await api('POST', '/team/new', body);
      alias.value = models.value = '';
      setStatus(status, 'ok', `Created team ${teamName(t)}.`);
      await changed();
    } catch (e) {
      setStatus(status, 'error', e.message);
    }
  });
  const list = h('div', { id: 'teams' });
  const show = (teams) => list.replaceChildren(teams.length === 0
    ? h('div', { class: 'empty' }, 'No teams yet. A team groups keys under one model allow-list and one set of limits.')
    : h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Team'), h('th', { scope: 'col' }, 'Team id'), h('th', { scope: 'col' }, 'Models'),
        h('th', { scope: 'col' }, 'Limits'), h('th', { scope: 'col', class: 'num' }, 'Spend'), h('th', { scope: 'col' }, 'State'))),
      h('tbody', {}, teams.map((t) => h('tr', { dataset: { id: t.team_id } },
        h('td', {}, t.team_alias || h('span', { class: 'muted' }, 'no alias')),
        h('td', { class: 'wrap' }, h('code', {}, t.team_id)),
        h('td', { class: 'wrap' }, t.models.length ? t.models.join(', ') : h('span', { class: 'muted' }, 'all models')),
        h('td', {}, limitsOf(t).join(', ') || h('span', { class: 'muted' }, 'none')),
        h('td', { class: 'num' }, fmtMoney(t.spend), t.max_budget !== null && t.max_budget !== undefined ? ` of ${fmtMoney(t.max_budget)}` : ''),
        h('td', {}, h('span', { class: `state state-${t.blocked ? 'unhealthy' : 'healthy'}` }, t.blocked ? 'Blocked' : 'Active')))))));
  const el = h('section', { class: 'card', 'aria-labelledby': 'teams-title' },
    h('h2', { id: 'teams-title' }, 'Teams'), list, h('h3', {}, 'Create a team'), form, status);
  return { el, show };
}

export function keysPage(main) {
  const status = h('p', { class: 'status', role: 'status', id: 'keys-status' });
  const secretArea = h('div', { id: 'secret-area' });
  const formArea = h('div', { id: 'key-form-area' });
  const list = h('div', { id: 'keys' });
  const updated = h('p', { class: 'muted small', id: 'keys-updated' });
  const ctx = { teams: [], models: { groups: [], access: [] } };
  let page = 1;
  let latest = null;
  let pendingDelete = null;

  const openForm = async (editing) => {
    // The form needs the teams and the served models as they are now.
    try {
      [ctx.teams, ctx.models] = await Promise.all([listTeams(), servedModels()]);
    } catch (e) {
      setStatus(status, 'error', e.message);
      return;
    }
    formArea.replaceChildren(keyForm(ctx, editing, (result) => {
      formArea.replaceChildren();
      if (result && result.created) {
        secretArea.replaceChildren(secretCard(result.created, () => { secretArea.replaceChildren(); createButton.focus(); }));
        setStatus(status, 'ok', `Created key ${keyLabel(result.created)}.`);
        document.getElementById('new-key-secret').select();
        document.getElementById('copy-key').focus();
        page = 1;
      } else if (result) {
        setStatus(status, 'ok', result.message);
      }
      if (result) refresh(); else createButton.focus();
    }));
    formArea.querySelector('input, select').focus();
  };
  const createButton = h('button', { type: 'button', id: 'create-key', onclick: () => openForm(null) }, 'Create key');
  const teamsSection = teamsCard(() => refresh());

  const act = async (done, fn) => {
    try {
      await fn();
      setStatus(status, 'ok', done);
    } catch (e) {
      setStatus(status, 'error', e.message);
    }
    pendingDelete = null;
    await refresh();
  };

  const focusAction = (action, token) => {
    const el = [...list.querySelectorAll('button[data-action]')].find((b) => b.dataset.action === action && b.dataset.target === token);
    if (el) el.focus();
  };

  const render = () => {
    if (!latest) return;
    const { keys, teams } = latest;
    const focused = list.contains(document.activeElement) ? { ...document.activeElement.dataset } : null;
    const teamByID = new Map(teams.map((t) => [t.team_id, t]));
    if (keys.total_count === 0) {
      list.replaceChildren(h('div', { class: 'empty' }, 'No keys yet: create one with "Create key". Until then only the master key can call the gateway.'));
      return;
    }
    const now = Date.now();
    const rows = keys.keys.map((k) => {
      const name = keyLabel(k);
      const st = stateOf(k, now);
      const team = k.team_id ? teamByID.get(k.team_id) : null;
      let actions;
      if (pendingDelete === k.token) {
        actions = h('span', {}, `Delete ${name}? Its secret stops working at once. `,
          h('button', { type: 'button', class: 'danger', dataset: { action: 'confirm', target: k.token },
            onclick: () => act(`Deleted key ${name}.`, () => api('POST', '/key/delete', { keys: [k.token] })) }, 'Yes, delete'), ' ',
          h('button', { type: 'button', class: 'secondary', dataset: { action: 'keep', target: k.token },
            onclick: () => { pendingDelete = null; render(); focusAction('delete', k.token); } }, 'Keep it'));
      } else {
        const block = k.blocked ? 'unblock' : 'block';
        actions = h('span', { class: 'row-actions' },
          h('button', { type: 'button', class: 'secondary', 'aria-label': `Edit ${name}`, dataset: { action: 'edit', target: k.token }, onclick: () => openForm(k) }, 'Edit'),
          h('button', { type: 'button', class: 'secondary', 'aria-label': `${k.blocked ? 'Unblock' : 'Block'} ${name}`, dataset: { action: block, target: k.token },
            onclick: () => act(`${k.blocked ? 'Unblocked' : 'Blocked'} key ${name}.`, () => api('POST', `/key/${block}`, { key: k.token })) }, k.blocked ? 'Unblock' : 'Block'),
          h('button', { type: 'button', class: 'secondary', 'aria-label': `Delete ${name}`, dataset: { action: 'delete', target: k.token },
            onclick: () => { pendingDelete = k.token; render(); focusAction('confirm', k.token); } }, 'Delete'));
      }
      const limits = limitsOf(k);
      const budget = k.max_budget !== null && k.max_budget !== undefined;
      return h('tr', { dataset: { token: k.token } },
        h('td', { class: 'wrap' }, k.key_alias || h('span', { class: 'muted' }, 'no alias'), h('span', { class: 'detail' }, h('code', {}, k.key_name))),
        h('td', { class: 'wrap' }, team ? (team.team_alias || team.team_id) : (k.team_id || h('span', { class: 'muted' }, '–'))),
        h('td', { class: 'wrap' }, k.models.length ? k.models.join(', ') : h('span', { class: 'muted' }, k.team_id ? 'team\'s models' : 'all models')),
        h('td', {}, limits.length ? limits.map((l) => h('span', { class: 'line' }, l)) : h('span', { class: 'muted' }, 'none')),
        h('td', { class: 'num' }, fmtMoney(k.spend), budget ? ` of ${fmtMoney(k.max_budget)}` : '',
          h('span', { class: 'detail' }, budget ? (k.budget_duration ? `resets every ${k.budget_duration}` : 'never resets') : 'no budget')),
        h('td', { class: 'state-cell' }, h('span', { class: `state state-${st.cls}` }, st.text), st.detail ? h('span', { class: 'detail' }, st.detail) : null),
        h('td', {}, actions));
    });
    const pages = Math.max(1, keys.total_pages);
    const pager = h('nav', { class: 'pager', 'aria-label': 'Key pages' },
      h('button', { type: 'button', class: 'secondary', id: 'keys-prev', disabled: page <= 1, onclick: () => { page--; refresh(); } }, 'Previous page'),
      h('span', { id: 'keys-page' }, `Page ${page} of ${pages} · ${keys.total_count} key${keys.total_count === 1 ? '' : 's'}`),
      h('button', { type: 'button', class: 'secondary', id: 'keys-next', disabled: page >= pages, onclick: () => { page++; refresh(); } }, 'Next page'));
    list.replaceChildren(h('table', { class: 'keys' },
      h('colgroup', {}, ['key', 'team', 'models', 'limits', 'spend', 'state', 'actions'].map((c) => h('col', { class: 'k-' + c }))),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Team'), h('th', { scope: 'col' }, 'Models'),
        h('th', { scope: 'col' }, 'Limits'), h('th', { scope: 'col', class: 'num' }, 'Spend'), h('th', { scope: 'col' }, 'State'),
        h('th', { scope: 'col' }, 'Actions'))),
      h('tbody', {}, rows)), ...(pages > 1 ? [pager] : []));
    if (focused && focused.action) focusAction(focused.action, focused.target);
  };

  let seq = 0;
  const refresh = async () => {
    const mine = ++seq;
    try {
      let [keys, teams] = await Promise.all([api('GET', `/key/list?return_full_object=true&size=${pageSize}&page=${page}`), listTeams()]);
      if (keys.keys.length === 0 && page > 1 && keys.total_pages > 0) {
        page = keys.total_pages; // the last page emptied: show the one before
        keys = await api('GET', `/key/list?return_full_object=true&size=${pageSize}&page=${page}`);
      }
      if (mine !== seq) return;
      latest = { keys, teams };
      render();
      teamsSection.show(teams);
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every 10 seconds.`;
    } catch (e) {
      if (e.status !== 401) setStatus(status, 'error', e.message);
    }
  };

  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Keys'), createButton),
    h('p', { class: 'muted' }, 'Virtual keys for the gateway\'s users (LiteLLM\'s /key API): each with its models, limits and budget, counted per key. A key\'s secret is shown once, when it is created.'),
    status, secretArea, formArea, list, updated, teamsSection.el);
  return poll(refresh, 10000);
}
