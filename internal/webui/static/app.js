// maasgate admin UI. Every action calls the admin API that scripts use,
// with the master key as a bearer header. The key lives in this page's
// memory only: no cookie, no storage, so another site cannot make the
// browser send it (no cross-site request forgery) and a reload logs out.

import {
  session, h, s, setStatus, fmtSeconds, fmtPct, fmtTime, fmtRate, APIError, api, poll, fieldId, readNumber, splitList,
} from './lib.js';
import { keysPage } from './keys.js';
import { usagePage } from './usage.js';

let stopPage = () => {};

// ---------- login and navigation

function showLogin(message) {
  stopPage();
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('banner').hidden = true;
  const status = h('p', { class: 'status', role: 'alert', id: 'login-status' });
  const input = h('input', { id: 'master-key', name: 'key', type: 'password', autocomplete: 'off', required: true, 'aria-describedby': 'master-key-hint' });
  const form = h('form', { class: 'card', id: 'login-form', novalidate: true },
    h('h1', {}, 'Log in'),
    h('div', { class: 'field' },
      h('label', { for: 'master-key' }, 'Master key'),
      input,
      h('p', { class: 'hint', id: 'master-key-hint' }, 'The gateway\'s general_settings.master_key (or LITELLM_MASTER_KEY). It is kept in this page only; reloading the page logs you out.')),
    status,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Log in')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    if (!key) { setStatus(status, 'error', 'Enter the master key.'); input.focus(); return; }
    setStatus(status, '', '');
    session.key = key;
    try {
      await api('GET', '/router/settings', undefined, { login: true });
    } catch (e) {
      session.key = null;
      setStatus(status, 'error', e.status === 401 ? 'That key was refused. Check it and try again.' : e.message);
      input.select();
      return;
    }
    input.value = '';
    enter();
  });
  const main = document.getElementById('main');
  main.replaceChildren(h('div', { class: 'login' }, form));
  if (message) setStatus(status, '', message);
  input.focus();
}

function logout(message) {
  session.key = null;
  session.authOff = false;
  if (location.hash !== '#/login') history.replaceState(null, '', '#/login');
  showLogin(message || 'You are logged out.');
}

function enter() {
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = session.authOff;
  const banner = document.getElementById('banner');
  banner.hidden = !session.authOff;
  banner.textContent = session.authOff ? 'This gateway has no master key: anyone who can reach it can change it. Set general_settings.master_key.' : '';
  if (!pages[location.hash.slice(2)]) location.hash = '#/models';
  else route();
}

const pages = { models: modelsPage, health: healthPage, settings: settingsPage, traffic: trafficPage, keys: keysPage, usage: usagePage };

function route() {
  if (session.key === null) { showLogin(); return; }
  const name = location.hash.slice(2);
  const page = pages[name];
  if (!page) { location.hash = '#/models'; return; }
  stopPage();
  stopPage = () => {};
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === '#/' + name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const main = document.getElementById('main');
  main.replaceChildren();
  const stop = page(main);
  if (stop) stopPage = stop;
  document.title = document.querySelector('#nav a[aria-current]').textContent + ' · maasgate admin';
}

// ---------- Models page

const modelFields = [
  { key: 'model_name', label: 'Model group name', required: true, hint: 'The model name clients send, e.g. qwen3-14b. Deployments with the same name share its traffic.', list: true },
  { key: 'litellm_params.model', label: 'Upstream model', required: true, hint: 'provider/model as the server knows it, e.g. hosted_vllm/Qwen/Qwen3-14B or openai/qwen3-14b.' },
  { key: 'litellm_params.api_base', label: 'API base', hint: 'The server\'s OpenAI-compatible base URL, e.g. http://gpu-3:8000/v1.' },
  { key: 'litellm_params.api_key', label: 'API key', type: 'password', hint: 'Optional. Never shown again. Or os.environ/NAME to read it from the gateway\'s environment.' },
  { key: 'litellm_params.rpm', label: 'Requests per minute (rpm)', type: 'number', step: '1', hint: 'Optional cap; also a weight for simple-shuffle.' },
  { key: 'litellm_params.tpm', label: 'Tokens per minute (tpm)', type: 'number', step: '1', hint: 'Optional cap.' },
  { key: 'litellm_params.weight', label: 'Weight', type: 'number', step: 'any', hint: 'Optional share of traffic relative to the other deployments.' },
  { key: 'litellm_params.max_parallel_requests', label: 'Max parallel requests', type: 'number', step: '1', hint: 'Optional in-flight cap for this server.' },
  { key: 'litellm_params.timeout', label: 'Timeout (seconds)', type: 'number', step: 'any', hint: 'Optional; the router\'s timeout otherwise.' },
  { key: 'litellm_params.stream_timeout', label: 'Stream timeout (seconds)', type: 'number', step: 'any', hint: 'Optional wait for a stream\'s first chunk.' },
  { key: 'litellm_params.order', label: 'Order', type: 'number', step: '1', hint: 'Optional tier: lower orders get the traffic first; higher ones take over when they are down or full.' },
  { key: 'litellm_params.num_retries', label: 'Retries', type: 'number', step: '1', hint: 'Optional; the router\'s num_retries otherwise.' },
  { key: 'litellm_params.cooldown_time', label: 'Cooldown time (seconds)', type: 'number', step: 'any', hint: 'Optional; the router\'s cooldown_time otherwise.' },
  { key: 'litellm_params.input_cost_per_token', label: 'Input cost per token', type: 'number', step: 'any', hint: 'Optional, for cost-based routing and the spend metric.' },
  { key: 'litellm_params.output_cost_per_token', label: 'Output cost per token', type: 'number', step: 'any', hint: 'Optional, for cost-based routing and the spend metric.' },
  { key: 'model_info.id', label: 'Deployment id', hint: 'Optional; a random id otherwise. Cannot be changed later.', addOnly: true },
];

// key: message") into the fields it names.
function problemsOf(e) {
  const out = [];
  const body = e.message.replace(/^Invalid [^:]+: /, '');
  for (const part of body.split(/; (?=[\w.[\]]+: )/)) {
    const m = part.match(/^([\w.[\]]+): (.*)$/s);
    if (m) out.push({ key: m[1], message: m[2] });
  }
  if (out.length === 0 && e.param) out.push({ key: e.param, message: e.message });
  return out;
}

const editHints = {
  'litellm_params.api_key': 'Leave empty to keep the stored key.',
  'litellm_params.api_base': 'Shown without credentials or query; left as is, the stored value is kept.',
};

function modelForm(groups, editing, done) {
  const form = h('form', { class: 'card', id: 'model-form', novalidate: true, 'aria-labelledby': 'model-form-title' });
  const status = h('p', { class: 'status', role: 'alert' });
  const inputs = {};
  const errs = {};
  const grid = h('div', { class: 'grid' });
  const params = editing ? editing.litellm_params : {};
  for (const f of modelFields) {
    if (f.addOnly && editing) continue;
    const id = fieldId(f.key);
    const [scope, name] = f.key.includes('.') ? f.key.split('.') : ['', f.key];
    let value = '';
    if (editing) value = scope === 'litellm_params' ? (params[name] ?? '') : editing.model_name;
    if (f.key === 'litellm_params.api_key') value = '';
    const input = h('input', {
      id, name: f.key, type: f.type || 'text', step: f.step, min: f.type === 'number' ? '0' : undefined,
      required: f.required, value, list: f.list ? 'group-names' : undefined,
      placeholder: editing && f.key === 'litellm_params.api_key' ? 'unchanged' : undefined,
      autocomplete: f.type === 'password' ? 'new-password' : 'off',
      'aria-describedby': `${id}-hint ${id}-err`,
    });
    inputs[f.key] = input;
    errs[f.key] = h('p', { class: 'error', id: `${id}-err`, hidden: true });
    grid.append(h('div', { class: 'field' },
      h('label', { for: id }, f.label + (f.required ? ' (required)' : '')),
      input,
      h('p', { class: 'hint', id: `${id}-hint` }, editing ? (editHints[f.key] || f.hint) : f.hint),
      errs[f.key]));
  }
  const datalist = h('datalist', { id: 'group-names' }, groups.map((g) => h('option', { value: g })));
  const title = editing ? `Edit deployment ${editing.model_info.id}` : 'Add a deployment';
  form.append(h('h2', { id: 'model-form-title' }, title), datalist, grid, status,
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, editing ? 'Save changes' : 'Add deployment'),
      h('button', { type: 'button', class: 'secondary', onclick: () => done(null) }, 'Cancel')));

  const clear = () => {
    for (const k of Object.keys(errs)) { errs[k].hidden = true; errs[k].textContent = ''; inputs[k].removeAttribute('aria-invalid'); }
    setStatus(status, '', '');
  };
  const fail = (key, message) => {
    const k = inputs[key] ? key : Object.keys(inputs).find((x) => key.endsWith('.' + x.split('.').pop()) || x.endsWith('.' + key));
    if (!k) return false;
    errs[k].textContent = message;
    errs[k].hidden = false;
    inputs[k].setAttribute('aria-invalid', 'true');
    return true;
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear();
    let bad = false;
    const body = { model_name: '', litellm_params: {}, model_info: {} };
    for (const f of modelFields) {
      const input = inputs[f.key];
      if (!input) continue;
      let v;
      try {
        v = f.type === 'number' ? readNumber(input, f.step === '1') : input.value.trim();
      } catch (e) {
        fail(f.key, e.message); bad = true; continue;
      }
      if (f.required && !v) { fail(f.key, `${f.label} is required.`); bad = true; continue; }
      const [scope, name] = f.key.includes('.') ? f.key.split('.') : ['', f.key];
      if (!scope) { body.model_name = v; continue; }
      if (editing) {
        // Only what was changed is sent: an untouched field keeps its
        // stored value (an os.environ/ reference, credentials in the
        // api_base), an emptied one is removed, an empty key is kept.
        if (input.value === input.defaultValue || (f.key === 'litellm_params.api_key' && v === '')) continue;
        body[scope][name] = v === '' ? null : v;
        continue;
      }
      if (v !== '' && v !== null) body[scope][name] = v;
    }
    if (bad) { setStatus(status, 'error', 'Some fields need a fix: see the messages next to them.'); return; }
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      if (editing) {
        delete body.model_info;
        if (body.model_name === editing.model_name) delete body.model_name;
        await api('PATCH', `/model/${encodeURIComponent(editing.model_info.id)}/update`, body);
      } else {
        if (!body.model_info.id) delete body.model_info;
        await api('POST', '/model/new', body);
      }
      done(editing ? `Saved deployment ${editing.model_info.id}.` : `Added a deployment to ${body.model_name}.`);
    } catch (e) {
      const problems = problemsOf(e);
      const unplaced = problems.filter((p) => !fail(p.key, p.message));
      setStatus(status, 'error', unplaced.length || problems.length === 0 ? e.message : 'The gateway did not accept this: see the messages next to the fields.');
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// stateOf names a deployment's health as the gateway decides it, in
// the same words on every page. Healthy means in rotation: its last health
// check passed (or none ran yet) and the router is neither cooling it down
// after failed requests nor holding it as stalled. x is a GET /health
// entry, or /model/info's state: status, cooling_down,
// cooldown_seconds_left and the check's error and time.
function stateOf(x) {
  const left = `${Math.max(1, Math.ceil(x.cooldown_seconds_left || 0))} s left`;
  const checked = x.last_health_check || x.checked_at;
  switch (x.status) {
    case 'healthy':
      return { cls: 'healthy', text: 'Healthy', detail: checked ? `checked ${fmtTime(checked)}` : '' };
    case 'cooling_down':
      return { cls: 'cooling', text: 'Cooling down', detail: `${left}; no requests until then` };
    case 'stalled':
      return { cls: 'cooling', text: 'Stalled', detail: 'no answer while requests waited; one trial request at a time until it answers' };
    case 'probe_failed':
      return { cls: 'unhealthy', text: 'Probe failed', detail: (x.health_check_error ?? x.error ?? '') + (x.cooling_down ? `; also cooling down, ${left}` : '') };
    default:
      return { cls: 'unknown', text: 'Unknown', detail: '' };
  }
}

// healthyWords says what the Models and Health pages count as healthy.
const healthyWords = 'Healthy means in rotation: the deployment\'s last health check passed (or none ran yet), and the router is neither cooling it down after failed requests nor holding it as stalled.';

// backendCells are the Queue, KV cache and Prefix hits cells of a
// deployment: what its server last reported on its vLLM /metrics, greyed
// and marked "(stale)" when the gateway no longer trusts it.
function backendCells(st) {
  const b = st.backend;
  const blank = (text, title) => [0, 1, 2].map(() => h('td', { class: 'num muted', title }, text));
  if (!b) return blank('–', 'Not scraped yet');
  if (!b.metrics_supported) return blank('n/a', 'The server has no vLLM /metrics');
  const stale = b.stale ? ' (stale)' : '';
  const cls = 'num load' + (b.stale ? ' muted' : '');
  const title = b.stale ? `Last scraped ${fmtTime(b.scraped_at)}${b.error ? ': ' + b.error : ''}; not trusted` : `Scraped ${fmtTime(b.scraped_at)}`;
  const size = b.kv_cache_blocks ? `of ${(b.kv_cache_blocks * b.kv_cache_block_size).toLocaleString('en-US')} tokens` : '';
  return [
    h('td', { class: cls + ' queue', title }, `${b.num_requests_waiting} waiting`, h('span', { class: 'detail' }, `${b.num_requests_running} running${stale}`)),
    h('td', { class: cls + ' kv', title }, b.kv_cache_usage === null ? '–' : fmtPct(b.kv_cache_usage) + stale,
      size ? h('span', { class: 'detail' }, size) : null),
    h('td', { class: cls + ' prefix', title: b.prefix_cache_hit_rate === null ? 'No hit rate yet: no prefix cache queries between two scrapes, or the server does not report them' : `Share of prompt tokens found in the server's prefix cache between its last two scrapes. ${title}` },
      b.prefix_cache_hit_rate === null ? '–' : fmtPct(b.prefix_cache_hit_rate) + stale),
  ];
}

function modelsPage(main) {
  const status = h('p', { class: 'status', role: 'status', id: 'models-status' });
  const formArea = h('div', { id: 'form-area' });
  const list = h('div', { id: 'models' });
  const updated = h('p', { class: 'muted small', id: 'models-updated' });
  let groups = [];
  let pendingDelete = null;
  let latest = null;

  const openForm = (editing) => {
    formArea.replaceChildren(modelForm(groups, editing, (msg) => {
      formArea.replaceChildren();
      if (msg) { setStatus(status, 'ok', msg); refresh(); }
      addButton.focus();
    }));
    formArea.querySelector('input').focus();
  };
  const addButton = h('button', { type: 'button', id: 'add-model', onclick: () => openForm(null) }, 'Add deployment');

  const del = async (id) => {
    try {
      await api('POST', '/model/delete', { id });
      setStatus(status, 'ok', `Deleted deployment ${id}.`);
    } catch (e) {
      setStatus(status, 'error', `Could not delete ${id}: ${e.message}`);
    }
    pendingDelete = null;
    refresh();
  };

  // focusAction focuses a row's button; the table is rebuilt at every
  // refresh, so the focused button is found again by what it does.
  const focusAction = (action, id) => {
    const el = [...list.querySelectorAll('button[data-action]')].find((b) => b.dataset.action === action && b.dataset.target === id);
    if (el) el.focus();
  };

  const render = () => {
    if (!latest) return;
    const [info, traffic] = latest;
    const focused = list.contains(document.activeElement) ? document.activeElement.dataset : null;
    const byID = new Map(((traffic && traffic.deployments) || []).map((d) => [d.model_id, d]));
    const byGroup = new Map();
    for (const m of info.data) {
      if (!byGroup.has(m.model_name)) byGroup.set(m.model_name, []);
      byGroup.get(m.model_name).push(m);
    }
    groups = [...byGroup.keys()].sort();
    if (groups.length === 0) {
      list.replaceChildren(h('div', { class: 'empty' }, 'No models yet: add one with "Add deployment".'));
      return;
    }
    list.replaceChildren(...groups.map((g, gi) => {
      const ms = byGroup.get(g);
      const healthy = ms.filter((m) => m.model_info.state.healthy).length;
      const rows = ms.map((m) => {
        const id = m.model_info.id;
        const st = m.model_info.state;
        const state = stateOf(st);
        const t = byID.get(id);
        const db = m.model_info.db_model;
        let actions;
        if (!db) {
          actions = h('span', { class: 'muted small', title: 'Models from the config file change only by editing the file and restarting.' },
            'Read-only', h('span', { class: 'detail' }, 'edit the config file to change it'));
        } else if (pendingDelete === id) {
          actions = h('span', {}, `Delete ${id}? `,
            h('button', { type: 'button', class: 'danger', dataset: { action: 'confirm', target: id }, onclick: () => del(id) }, 'Yes, delete'), ' ',
            h('button', { type: 'button', class: 'secondary', dataset: { action: 'keep', target: id },
              onclick: () => { pendingDelete = null; render(); focusAction('delete', id); } }, 'Keep it'));
        } else {
          actions = h('span', {},
            h('button', { type: 'button', class: 'secondary', 'aria-label': `Edit ${id}`, dataset: { action: 'edit', target: id }, onclick: () => openForm(m) }, 'Edit'), ' ',
            h('button', { type: 'button', class: 'secondary', 'aria-label': `Delete ${id}`, dataset: { action: 'delete', target: id },
              onclick: () => { pendingDelete = id; render(); focusAction('confirm', id); } }, 'Delete'));
        }
        return h('tr', { dataset: { id } },
          h('td', { class: 'wrap' }, h('code', {}, id)),
          h('td', { class: 'wrap base' }, m.litellm_params.api_base || h('span', { class: 'muted' }, 'provider default'),
            h('span', { class: 'detail' }, m.litellm_params.model)),
          h('td', {}, db ? 'database' : 'config file'),
          h('td', { class: 'state-cell' }, h('span', { class: `state state-${state.cls}` }, state.text),
            state.detail ? h('span', { class: 'detail' }, state.detail) : null),
          h('td', { class: 'num' }, String(st.in_flight)),
          h('td', { class: 'num' }, t ? fmtSeconds(t.mean_latency_seconds) : '–'),
          h('td', { class: 'num', title: t ? `${t.errors} of ${t.requests} attempts in the last minute` : 'no requests in the last minute' },
            t ? `${fmtPct(t.error_rate)} of ${t.requests}` : '–'),
          ...backendCells(st),
          h('td', {}, actions));
      });
      return h('section', { class: 'card', dataset: { group: g }, 'aria-labelledby': `group-${gi}` },
        h('h2', { id: `group-${gi}` }, g, ' ', h('span', { class: 'muted small healthy-count', title: healthyWords }, `${healthy} of ${ms.length} healthy`)),
        h('table', { class: 'models' },
          h('colgroup', {}, ['id', 'base', 'source', 'state', 'inflight', 'latency', 'errors', 'queue', 'kv', 'prefix', 'actions'].map((c) => h('col', { class: 'c-' + c }))),
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col' }, 'Deployment id'), h('th', { scope: 'col' }, 'API base'), h('th', { scope: 'col' }, 'Source'),
            h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col', class: 'num' }, 'In flight'),
            h('th', { scope: 'col', class: 'num' }, 'Latency (1 min)'), h('th', { scope: 'col', class: 'num' }, 'Errors (1 min)'),
            h('th', { scope: 'col', class: 'num' }, 'Queue'), h('th', { scope: 'col', class: 'num' }, 'KV cache'),
            h('th', { scope: 'col', class: 'num', title: 'Prefix cache hit rate reported by the server' }, 'Prefix hits'),
            h('th', { scope: 'col' }, 'Actions'))),
          h('tbody', {}, rows)));
    }));
    if (focused && focused.action) focusAction(focused.action, focused.target);
  };

  // Refreshes can overlap (the poll, and one after each change): only the
  // newest one's answer is shown.
  let seq = 0;
  const refresh = async () => {
    const mine = ++seq;
    try {
      // The traffic numbers are extras: the models show without them.
      const answer = await Promise.all([api('GET', '/model/info'), api('GET', '/traffic?window=60').catch(() => null)]);
      if (mine !== seq) return;
      latest = answer;
      render();
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every 3 seconds.`;
    } catch (e) {
      if (e.status !== 401) updated.textContent = `Could not refresh: ${e.message}`;
    }
  };

  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Models'), addButton),
    h('p', { class: 'muted small' }, healthyWords),
    status, formArea, list, updated);
  return poll(refresh, 3000);
}

// ---------- Health page

function healthPage(main) {
  const select = h('select', { id: 'health-model', name: 'model' }, h('option', { value: '' }, 'All models'));
  const status = h('p', { class: 'status', role: 'status' });
  const results = h('div', { id: 'health-results', 'aria-live': 'polite' });
  const latest = h('div', { id: 'health-latest' });
  const run = h('button', { type: 'submit', id: 'run-health' }, 'Run health check');

  const stateCell = (st) => h('td', { class: 'state-cell' }, h('span', { class: `state state-${st.cls}` }, st.text),
    st.detail ? h('span', { class: 'detail' }, st.detail) : null);
  const table = (rows, withState) => h('table', {},
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Model group'), h('th', { scope: 'col' }, 'Deployment id'), h('th', { scope: 'col' }, 'API base'),
      h('th', { scope: 'col' }, 'Checked'), withState ? h('th', { scope: 'col' }, 'State') : null)),
    h('tbody', {}, rows.map((r) => h('tr', { dataset: { id: r.model_id } },
      h('td', {}, r.model_name), h('td', { class: 'wrap' }, h('code', {}, r.model_id)), h('td', { class: 'wrap' }, r.api_base || '–'),
      h('td', {}, fmtTime(r.checked_at)),
      withState ? stateCell(stateOf(r)) : null))));

  const loadLatest = async () => {
    const info = await api('GET', '/model/info');
    const groups = [...new Set(info.data.map((m) => m.model_name))].sort();
    const chosen = select.value;
    select.replaceChildren(h('option', { value: '' }, 'All models'), ...groups.map((g) => h('option', { value: g }, g)));
    select.value = groups.includes(chosen) ? chosen : '';
    const rows = info.data.filter((m) => m.model_info.state.last_health_check);
    latest.replaceChildren(
      h('h2', {}, 'Background checks'),
      h('p', { class: 'muted small' }, 'The background checks\' latest result for each deployment (general_settings.background_health_checks, every health_check_interval seconds), and its state now. A deployment failing them is out of rotation until it passes again; one that passes can still be out of rotation, cooling down after failed requests.'),
      rows.length === 0
        ? h('div', { class: 'empty' }, 'No background check results: the checks are off (set general_settings.background_health_checks: true) or have not run yet. The check above works either way; with the checks off, a failed check above takes nothing out of rotation (failed requests do).')
        : h('table', {},
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Model group'), h('th', { scope: 'col' }, 'Deployment id'),
            h('th', { scope: 'col' }, 'Last check'), h('th', { scope: 'col' }, 'Checked'), h('th', { scope: 'col' }, 'State now'))),
          h('tbody', {}, rows.map((m) => {
            const st = m.model_info.state;
            const passed = !st.health_check_error;
            return h('tr', { dataset: { id: m.model_info.id } }, h('td', {}, m.model_name), h('td', { class: 'wrap' }, h('code', {}, m.model_info.id)),
              h('td', { class: 'wrap' }, h('span', { class: `state state-${passed ? 'healthy' : 'unhealthy'}` }, passed ? 'Passed' : 'Failed'),
                passed ? null : h('span', { class: 'detail' }, st.health_check_error)),
              h('td', {}, fmtTime(st.last_health_check)),
              stateCell(stateOf(st)));
          }))));
  };

  const form = h('form', { class: 'card inline', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'health-model' }, 'Model'), select), run);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    run.disabled = true;
    setStatus(status, '', 'Checking…');
    const q = select.value ? '?model=' + encodeURIComponent(select.value) : '';
    try {
      const r = await api('GET', '/health' + q, undefined, { accept: [503] });
      if (!r || !Array.isArray(r.healthy_endpoints)) throw new APIError(503, 'The gateway could not run the health check. Try again.');
      setStatus(status, r.unhealthy_count ? 'error' : 'ok',
        `${r.healthy_count} healthy, ${r.unhealthy_count} unhealthy${select.value ? ' in ' + select.value : ''}.`);
      results.replaceChildren(
        h('h2', { id: 'healthy-heading' }, `Healthy endpoints (${r.healthy_count})`),
        r.healthy_count ? table(r.healthy_endpoints, false) : h('div', { class: 'empty' }, 'None.'),
        h('h2', { id: 'unhealthy-heading' }, `Unhealthy endpoints (${r.unhealthy_count})`),
        r.unhealthy_count ? table(r.unhealthy_endpoints, true) : h('div', { class: 'empty' }, 'None.'));
      results.querySelector('#healthy-heading + table')?.setAttribute('aria-labelledby', 'healthy-heading');
      results.querySelector('#unhealthy-heading + table')?.setAttribute('aria-labelledby', 'unhealthy-heading');
      await loadLatest();
    } catch (e) {
      setStatus(status, 'error', e.message);
    } finally {
      run.disabled = false;
    }
  });
  main.append(h('h1', {}, 'Health'),
    h('p', { class: 'muted' }, 'Sends each deployment a small request (GET /health) and shows which are healthy, and why the others are not. ', healthyWords),
    form, status, results, latest);
  loadLatest().catch((e) => setStatus(status, 'error', e.message));
}

// ---------- Router Settings page

const fallbackLists = new Set(['fallbacks', 'context_window_fallbacks', 'content_policy_fallbacks']);

function showDefault(v) {
  if (v === null || v === undefined) return 'not set';
  if (typeof v === 'object') return Object.keys(v).length === 0 ? 'none' : JSON.stringify(v);
  return String(v);
}

// editorFor returns the input for one setting and a read() giving its
// value as /config/update takes it, or throwing a message for the field.
function editorFor(f, groups) {
  const id = fieldId(f.field_name);
  const v = f.field_value;
  if (f.options && f.options.length) {
    const opts = f.options.map((o) => h('label', { class: 'choice' },
      h('input', { type: 'radio', name: f.field_name, value: o, checked: o === v }),
      h('span', {}, h('code', {}, o), o === f.field_default ? ' (default)' : ''),
      h('span', { class: 'desc' }, (f.descriptions || {})[o] || '')));
    return {
      el: h('div', { role: 'radiogroup', 'aria-labelledby': `${id}-label`, 'aria-describedby': `${id}-desc ${id}-err`, id }, opts),
      labelTag: 'span',
      read: () => (opts.map((l) => l.querySelector('input')).find((i) => i.checked) || {}).value ?? v,
    };
  }
  switch (f.field_type) {
    case 'Integer':
    case 'Float': {
      const input = h('input', { id, type: 'number', step: f.field_type === 'Integer' ? '1' : 'any', min: '0', value: v ?? '' });
      return { el: input, read: () => readNumber(input, f.field_type === 'Integer') };
    }
    case 'Boolean': {
      const input = h('input', { id, type: 'checkbox', checked: !!v });
      return { el: h('div', { class: 'check' }, input, h('span', {}, 'On')), read: () => input.checked };
    }
    case 'List':
      if (fallbackLists.has(f.field_name)) return fallbackEditor(f, id, groups);
      {
        const input = h('input', { id, type: 'text', value: (v || []).join(', '), placeholder: 'group-a, group-b' });
        return { el: input, hint: 'Model groups, in order, separated by commas.', read: () => splitList(input.value) };
      }
    default: {
      const input = h('textarea', { id, rows: 3, spellcheck: 'false' });
      input.value = JSON.stringify(v ?? {}, null, 1).replace(/\n\s*/g, ' ');
      return {
        el: input,
        hint: 'A JSON object.',
        read: () => {
          const raw = input.value.trim();
          if (raw === '') return {};
          let parsed;
          try { parsed = JSON.parse(raw); } catch (e) { throw new Error(`Not valid JSON: ${e.message}`); }
          if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('Enter a JSON object, like {"key": 1}.');
          return parsed;
        },
      };
    }
  }
}

// fallbackEditor edits [{group: [fallback, ...]}, ...] as rows of a model
// group and its ordered fallback groups.
function fallbackEditor(f, id, groups) {
  const rows = h('div', { id, role: 'group', 'aria-labelledby': `${id}-label` });
  let n = 0;
  const addRow = (from, to) => {
    const k = `${id}-${n++}`;
    const fromInput = h('input', { id: `${k}-from`, type: 'text', value: from, list: 'settings-groups' });
    const toInput = h('input', { id: `${k}-to`, type: 'text', value: to.join(', '), list: 'settings-groups', placeholder: 'group-b, group-c' });
    const row = h('div', { class: 'fb-row' },
      h('div', { class: 'field' }, h('label', { for: `${k}-from` }, 'Model group'), fromInput),
      h('span', { class: 'arrow', 'aria-hidden': 'true' }, '→'),
      h('div', { class: 'field' }, h('label', { for: `${k}-to` }, 'Falls back to, in order'), toInput),
      h('button', { type: 'button', class: 'secondary', 'aria-label': 'Remove this fallback', onclick: () => row.remove() }, 'Remove'));
    row.read = () => [fromInput.value.trim(), splitList(toInput.value)];
    rows.append(row);
    return fromInput;
  };
  for (const entry of f.field_value || []) {
    for (const [from, to] of Object.entries(entry)) addRow(from, to);
  }
  const add = h('button', { type: 'button', class: 'secondary', id: `${id}-add`, 'aria-label': `Add a fallback to ${f.ui_field_name}`, onclick: () => addRow('', []).focus() }, 'Add fallback');
  return {
    el: h('div', {}, rows, add),
    labelTag: 'span',
    hint: groups.length ? `Model groups: ${groups.join(', ')}.` : '',
    read: () => {
      const out = [];
      for (const row of rows.children) {
        const [from, to] = row.read();
        if (!from && to.length === 0) continue;
        if (!from) throw new Error('Each fallback needs the model group it is for.');
        if (to.length === 0) throw new Error(`Name at least one fallback group for ${from}.`);
        out.push({ [from]: to });
      }
      return out;
    },
  };
}

function settingsPage(main) {
  const status = h('p', { class: 'status', role: 'status', id: 'settings-status' });
  const form = h('form', { class: 'card', id: 'settings-form', novalidate: true });
  let editors = [];

  const load = async () => {
    const [settings, info] = await Promise.all([api('GET', '/router/settings'), api('GET', '/model/info')]);
    const groups = [...new Set(info.data.map((m) => m.model_name))].sort();
    editors = [];
    form.replaceChildren(h('datalist', { id: 'settings-groups' }, groups.map((g) => h('option', { value: g }))));
    for (const f of settings.fields) {
      if (f.field_name === 'routing_strategy') f.descriptions = settings.routing_strategy_descriptions;
      const id = fieldId(f.field_name);
      const ed = editorFor(f, groups);
      const err = h('p', { class: 'error', id: `${id}-err`, hidden: true });
      // Groups named in fallbacks that are not served: accepted (groups
      // come and go at runtime), but said next to the setting.
      const warns = (settings.warnings || []).filter((w) => w.field === f.field_name);
      const warn = warns.length ? h('div', { class: 'warning', id: `${id}-warn` }, warns.map((w) => h('p', {}, w.message))) : null;
      const labelTag = ed.labelTag || 'label';
      const label = h(labelTag, { class: 'legend', id: `${id}-label`, for: labelTag === 'label' ? id : undefined }, f.ui_field_name,
        ' ', h('code', { class: 'muted small' }, f.field_name));
      const reset = h('button', { type: 'button', class: 'link small', 'aria-label': `Use the config file's value for ${f.ui_field_name}`,
        onclick: () => save({ [f.field_name]: null }, `${f.ui_field_name} uses the config file's value again.`) }, 'Use the config file\'s value');
      const setting = h('div', { class: 'setting field', dataset: { field: f.field_name } },
        label,
        h('p', { class: 'meta', id: `${id}-desc` }, f.field_description, ' Default: ', showDefault(f.field_default), '.',
          ed.hint ? ' ' + ed.hint : ''),
        ed.el, warn, err, h('div', {}, reset));
      // Descriptions, warnings and errors belong to the inputs themselves.
      for (const input of setting.querySelectorAll('input, textarea, select')) {
        if (input.type !== 'radio') input.setAttribute('aria-describedby', `${id}-desc ${warn ? id + '-warn ' : ''}${id}-err`);
      }
      form.append(setting);
      editors.push({ f, ed, err, setting, original: JSON.stringify(f.field_value ?? null) });
    }
    form.append(h('div', { class: 'actions' },
      h('button', { type: 'submit', id: 'save-settings' }, 'Save settings'),
      h('button', { type: 'button', class: 'secondary', onclick: () => { setStatus(status, '', ''); load(); } }, 'Undo changes')));
  };

  const showError = (ed, message) => {
    ed.err.textContent = message;
    ed.err.hidden = false;
    for (const input of ed.setting.querySelectorAll('input:not([type=radio]), textarea')) input.setAttribute('aria-invalid', 'true');
  };
  const clearErrors = () => {
    for (const ed of editors) {
      ed.err.hidden = true;
      ed.err.textContent = '';
      for (const input of ed.setting.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
    }
  };

  // save sends changes to POST /config/update; the gateway's validation
  // problems are shown next to their settings.
  const save = async (changed, done) => {
    clearErrors();
    let answer;
    try {
      answer = await api('POST', '/config/update', { router_settings: changed });
    } catch (e) {
      setStatus(status, 'error', `Not saved: ${e.message}`);
      for (const p of problemsOf(e)) {
        const name = p.key.replace(/^router_settings\./, '').split(/[.[]/)[0];
        const hit = editors.find((x) => x.f.field_name === name);
        if (hit) showError(hit, p.message);
      }
      return;
    }
    await load();
    // The gateway warns about every setting; the status names those saved now.
    const warned = [...new Set(((answer && answer.warnings) || []).map((w) => w.field))].filter((n) => n in changed);
    if (warned.length === 0) { setStatus(status, 'ok', done); return; }
    const names = warned.map((n) => (editors.find((x) => x.f.field_name === n) || { f: { ui_field_name: n } }).f.ui_field_name);
    setStatus(status, 'warn', `${done} Warning: ${names.join(', ')} ${names.length === 1 ? 'names' : 'name'} model groups that are not served now; see the notes next to ${names.length === 1 ? 'it' : 'them'}.`);
  };

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors();
    const changed = {};
    let bad = false;
    for (const ed of editors) {
      try {
        const v = ed.ed.read();
        if (JSON.stringify(v ?? null) !== ed.original) changed[ed.f.field_name] = v;
      } catch (e) {
        showError(ed, e.message);
        bad = true;
      }
    }
    if (bad) { setStatus(status, 'error', 'Some settings need a fix: see the messages next to them.'); return; }
    const names = Object.keys(changed);
    if (names.length === 0) { setStatus(status, '', 'Nothing to save: no setting was changed.'); return; }
    await save(changed, `Saved ${names.join(', ')}. The router uses the new values now, and they are kept across restarts.`);
  });

  main.append(h('h1', {}, 'Router Settings'),
    h('p', { class: 'muted' }, 'How requests are spread over a model group\'s deployments, retried and sent to fallbacks. Saving applies the change at once (POST /config/update); requests in flight finish with the old settings. An emptied number, or "Use the config file\'s value", goes back to what the config file says.'),
    status, form);
  load().catch((e) => setStatus(status, 'error', e.message));
}

// ---------- Traffic page

function chart(title, points, series, fmt) {
  const W = 600, H = 170, L = 48, R = 10, T = 10, B = 24;
  let max = 0;
  for (const sr of series) for (const p of points) max = Math.max(max, sr.value(p) ?? 0);
  if (max === 0) max = 1;
  const x = (i) => L + (points.length <= 1 ? 0 : (i * (W - L - R)) / (points.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title}: peak ${fmt(max)}` },
    s('title', {}, title),
    s('line', { class: 'axis', x1: L, y1: y(0), x2: W - R, y2: y(0) }),
    s('line', { class: 'axis', x1: L, y1: T, x2: L, y2: y(0) }),
    s('text', { x: L - 4, y: T + 10, 'text-anchor': 'end' }, fmt(max)),
    s('text', { x: L - 4, y: y(0), 'text-anchor': 'end' }, fmt(0)),
    s('text', { x: L, y: H - 6 }, fmtTime(points[0] && points[0].time)),
    s('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, 'now'));
  series.forEach((sr, k) => {
    let d = '';
    points.forEach((p, i) => {
      const v = sr.value(p);
      if (v === null || v === undefined) return;
      d += `${d && points[i - 1] && sr.value(points[i - 1]) != null ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    });
    if (d) svg.append(s('path', { class: `line${k + 1}`, d }));
  });
  return h('div', { class: 'card chart' }, h('h3', {}, title,
    series.length > 1 ? series.map((sr, k) => h('span', { class: 'small muted' },
      h('span', { class: 'legend-key', dataset: { k } }), sr.name)) : null), svg);
}

function trafficPage(main) {
  const windowSelect = h('select', { id: 'traffic-window' },
    h('option', { value: '60' }, 'Last minute'), h('option', { value: '300', selected: true }, 'Last 5 minutes'),
    h('option', { value: '600' }, 'Last 10 minutes'));
  const body = h('div', { id: 'traffic' });
  const updated = h('p', { class: 'muted small' });
  let seq = 0;
  const refresh = async () => {
    const mine = ++seq;
    try {
      const [t, info] = await Promise.all([api('GET', '/traffic?window=' + windowSelect.value), api('GET', '/model/info')]);
      if (mine !== seq) return;
      const groupOf = new Map(info.data.map((m) => [m.model_info.id, m.model_name]));
      const tot = t.total;
      const mins = Math.round(t.window_seconds / 60);
      const tile = (label, value, id) => h('div', { class: 'tile', id }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
      const children = [h('div', { class: 'tiles' },
        tile('Requests / s', fmtRate(tot.requests_per_second), 'tile-rps'),
        tile('Requests', String(tot.requests), 'tile-requests'),
        tile('Error rate', fmtPct(tot.error_rate), 'tile-errors'),
        tile('p50 latency', fmtSeconds(tot.p50_seconds), 'tile-p50'),
        tile('p99 latency', fmtSeconds(tot.p99_seconds), 'tile-p99'))];
      if (tot.requests === 0) {
        children.push(h('div', { class: 'empty' }, `No requests in the last ${mins === 1 ? 'minute' : mins + ' minutes'}. Send one to /v1/chat/completions and it shows here.`));
      } else {
        children.push(h('div', { class: 'charts' },
          chart('Requests per second', t.points, [{ name: 'requests/s', value: (p) => p.requests_per_second }], fmtRate),
          chart('Error rate', t.points, [{ name: 'errors', value: (p) => (p.requests ? p.error_rate : null) }], fmtPct),
          chart('Latency', t.points, [{ name: 'p50', value: (p) => p.p50_seconds }, { name: 'p99', value: (p) => p.p99_seconds }], fmtSeconds)));
        children.push(h('h2', {}, 'Share of traffic per deployment'),
          h('p', { class: 'muted small' }, 'Attempts on each deployment; a retried request counts on every deployment it tried.'),
          h('table', { id: 'traffic-share' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Deployment id'), h('th', { scope: 'col' }, 'Model group'),
              h('th', { scope: 'col', class: 'num' }, 'Attempts'), h('th', { scope: 'col' }, 'Share'),
              h('th', { scope: 'col', class: 'num' }, 'Errors'), h('th', { scope: 'col', class: 'num' }, 'Mean latency'))),
            h('tbody', {}, t.deployments.map((d) => h('tr', { dataset: { id: d.model_id } },
              h('td', { class: 'wrap' }, h('code', {}, d.model_id)), h('td', {}, groupOf.get(d.model_id) || h('span', { class: 'muted' }, 'removed')),
              h('td', { class: 'num' }, String(d.requests)),
              h('td', {}, h('div', { class: 'bar', role: 'img', 'aria-label': fmtPct(d.share) }, h('span', { dataset: { w: d.share } })), ' ', fmtPct(d.share)),
              h('td', { class: 'num' }, fmtPct(d.error_rate)), h('td', { class: 'num' }, fmtSeconds(d.mean_latency_seconds)))))));
      }
      body.replaceChildren(...children);
      // Widths set through the CSSOM: the page's policy allows no inline style attributes.
      for (const span of body.querySelectorAll('.bar > span')) span.style.width = (Number(span.dataset.w) * 100).toFixed(1) + '%';
      for (const key of body.querySelectorAll('.legend-key')) key.style.background = key.dataset.k === '0' ? 'var(--accent)' : '#c2410c';
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every 5 seconds. Counted by this gateway process since it started (${t.step_seconds} s steps).`;
    } catch (e) {
      if (e.status !== 401) updated.textContent = `Could not refresh: ${e.message}`;
    }
  };
  windowSelect.addEventListener('change', refresh);
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Traffic'),
    h('div', { class: 'field inline' }, h('label', { for: 'traffic-window' }, 'Window'), windowSelect)), body, updated);
  return poll(refresh, 5000);
}

// ---------- start

document.getElementById('logout').addEventListener('click', () => logout());
window.addEventListener('maasgate:refused', () => logout('The gateway refused the key: log in again.'));
window.addEventListener('hashchange', () => { if (session.key !== null) route(); });

(async () => {
  // A gateway without a master key needs no login.
  try {
    const res = await fetch('/router/settings', { cache: 'no-store', credentials: 'omit' });
    if (res.ok) {
      session.key = '';
      session.authOff = true;
      enter();
      return;
    }
  } catch { /* shown by the login form's first try */ }
  showLogin();
})();
