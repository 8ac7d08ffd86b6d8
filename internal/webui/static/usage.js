// Usage page: spend, requests and tokens per day, from LiteLLM's daily
// activity endpoints (docs/litellm-keys.md §1.13): GET /user/daily/activity,
// or GET /team/daily/activity when a team is chosen, both filtered by key
// (its token) and model. Days are UTC dates, as the gateway records them.

import { h, s, setStatus, api, fmtMoney, fmtCount } from './lib.js';
import { listKeys, listTeams, teamName } from './keys.js';

const maxDays = 366;
const keyChoices = 1000; // keys offered in the filter; the rest by token

const metricNames = ['spend', 'prompt_tokens', 'completion_tokens', 'total_tokens', 'api_requests', 'successful_requests', 'failed_requests'];

function zero() { return Object.fromEntries(metricNames.map((n) => [n, 0])); }
function add(into, m) {
  for (const n of metricNames) into[n] += Number((m || {})[n]) || 0;
  return into;
}

function isoDay(d) { return d.toISOString().slice(0, 10); }
function daysBetween(start, end) {
  const out = [];
  for (let d = new Date(start + 'T00:00:00Z'); isoDay(d) <= end && out.length <= maxDays; d.setUTCDate(d.getUTCDate() + 1)) out.push(isoDay(d));
  return out;
}

// activity reads every page of the daily activity for the filters f.
async function activity(f) {
  const q = new URLSearchParams({ start_date: f.start, end_date: f.end, page_size: '1000' });
  if (f.model) q.set('model', f.model);
  if (f.key) q.set('api_key', f.key);
  let path = '/user/daily/activity';
  if (f.team) {
    path = '/team/daily/activity';
    q.set('team_ids', f.team);
  }
  const results = [];
  for (let page = 1; page <= 1000; page++) {
    q.set('page', String(page));
    const r = await api('GET', `${path}?${q}`);
    results.push(...(r.results || []));
    if (!r.metadata || !r.metadata.has_more) break;
  }
  return results;
}

// summarize adds the pages' results up per day, key, model and team (a day
// may span pages, since the endpoints page over stored rows).
function summarize(results, days) {
  const byDay = new Map(days.map((d) => [d, zero()]));
  const byKey = new Map(), byModel = new Map(), byTeam = new Map();
  const total = zero();
  const into = (map, name, meta) => {
    if (!map.has(name)) map.set(name, { name, meta: {}, m: zero() });
    const row = map.get(name);
    Object.assign(row.meta, meta || {});
    return row.m;
  };
  for (const r of results) {
    if (!byDay.has(r.date)) byDay.set(r.date, zero());
    add(byDay.get(r.date), r.metrics);
    add(total, r.metrics);
    const b = r.breakdown || {};
    // Per model group (the name clients send), else per upstream model.
    for (const [model, v] of Object.entries(b.model_groups || b.models || {})) add(into(byModel, model), v.metrics);
    for (const [hash, v] of Object.entries(b.api_keys || {})) {
      const meta = v.metadata || {};
      add(into(byKey, hash, meta), v.metrics);
      add(into(byTeam, meta.team_id || ''), v.metrics);
    }
  }
  const sorted = (map) => [...map.values()].sort((a, b) => b.m.spend - a.m.spend || b.m.api_requests - a.m.api_requests);
  return {
    days: [...byDay.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([date, m]) => ({ date, m })),
    keys: sorted(byKey), models: sorted(byModel), teams: sorted(byTeam), total,
  };
}

// barChart draws one bar a day, its series stacked.
function barChart(id, title, days, series, fmt) {
  const W = 600, H = 180, L = 58, R = 8, T = 12, B = 26;
  const totals = days.map((d) => series.reduce((a, sr) => a + sr.value(d), 0));
  const peak = Math.max(0, ...totals);
  const max = peak || 1;
  const slot = (W - L - R) / Math.max(1, days.length);
  const bw = Math.max(1, slot * 0.7);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const at = totals.indexOf(peak);
  const sum = totals.reduce((a, b) => a + b, 0);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', id,
    'aria-label': `${title}: ${fmt(sum)} over ${days.length} day${days.length === 1 ? '' : 's'}` + (peak ? `, most on ${days[at].date} (${fmt(peak)})` : '') },
  s('title', {}, title),
  s('line', { class: 'axis', x1: L, y1: y(0), x2: W - R, y2: y(0) }),
  s('line', { class: 'axis', x1: L, y1: T, x2: L, y2: y(0) }),
  s('text', { x: L - 4, y: T + 10, 'text-anchor': 'end' }, fmt(peak)),
  s('text', { x: L - 4, y: y(0), 'text-anchor': 'end' }, fmt(0)),
  s('text', { x: L, y: H - 6 }, days.length ? days[0].date : ''),
  s('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, days.length ? days[days.length - 1].date : ''));
  days.forEach((d, i) => {
    let base = 0;
    series.forEach((sr, k) => {
      const v = sr.value(d);
      if (!(v > 0)) return;
      svg.append(s('rect', { class: `bar${k + 1}`, 'data-date': d.date, x: (L + i * slot + (slot - bw) / 2).toFixed(1), y: y(base + v).toFixed(1),
        width: bw.toFixed(1), height: Math.max(0.5, y(base) - y(base + v)).toFixed(1) },
      s('title', {}, `${d.date}: ${sr.name} ${fmt(v)}`)));
      base += v;
    });
  });
  return h('div', { class: 'card chart' }, h('h3', {}, title,
    series.length > 1 ? series.map((sr, k) => h('span', { class: 'small muted' }, h('span', { class: `legend-key lk${k + 1}` }), sr.name)) : null), svg);
}

function metricCells(m) {
  return [
    h('td', { class: 'num' }, fmtCount(m.api_requests)), h('td', { class: 'num' }, fmtCount(m.failed_requests)),
    h('td', { class: 'num' }, fmtCount(m.prompt_tokens)), h('td', { class: 'num' }, fmtCount(m.completion_tokens)),
    h('td', { class: 'num' }, fmtCount(m.total_tokens)), h('td', { class: 'num' }, fmtMoney(m.spend)),
  ];
}
function metricHeads(first) {
  return h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, first),
    ['Requests', 'Failed', 'Prompt tokens', 'Completion tokens', 'Total tokens', 'Spend'].map((t) => h('th', { scope: 'col', class: 'num' }, t))));
}

function table(id, first, rows, cell) {
  return h('table', { id }, metricHeads(first),
    h('tbody', {}, rows.map((r) => h('tr', { dataset: { name: r.name } }, h('th', { scope: 'row', class: 'wrap' }, cell(r)), metricCells(r.m)))));
}

export function usagePage(main) {
  const today = isoDay(new Date());
  const monthAgo = new Date();
  monthAgo.setUTCDate(monthAgo.getUTCDate() - 29);
  const start = h('input', { id: 'usage-start', type: 'date', value: isoDay(monthAgo), max: today, required: true });
  const end = h('input', { id: 'usage-end', type: 'date', value: today, required: true });
  const keySel = h('select', { id: 'usage-key' }, h('option', { value: '' }, 'All keys'));
  const teamSel = h('select', { id: 'usage-team' }, h('option', { value: '' }, 'All teams'));
  const modelSel = h('select', { id: 'usage-model' }, h('option', { value: '' }, 'All models'));
  const show = h('button', { type: 'submit', id: 'show-usage' }, 'Show usage');
  const field = (id, label, input) => h('div', { class: 'field' }, h('label', { for: id }, label), input);
  const form = h('form', { class: 'card filters', id: 'usage-form', novalidate: true },
    field('usage-start', 'From (UTC)', start), field('usage-end', 'To (UTC)', end),
    field('usage-key', 'Key', keySel), field('usage-team', 'Team', teamSel), field('usage-model', 'Model', modelSel), show);
  const status = h('p', { class: 'status', role: 'status', id: 'usage-status' });
  const note = h('p', { class: 'status', role: 'alert' });
  const body = h('div', { id: 'usage', 'aria-live': 'polite' });
  const teamAlias = new Map();

  // The filters' choices; the page works without them (all keys, teams, models).
  const loadChoices = async () => {
    const [keys, teams, info] = await Promise.all([listKeys(keyChoices), listTeams(), api('GET', '/model/info')]);
    keySel.append(...keys.keys.map((k) => h('option', { value: k.token }, k.key_alias ? `${k.key_alias} (${k.key_name})` : k.key_name)));
    if (keys.total === null) keySel.append(h('option', { value: '', disabled: true }, `Only the first ${keyChoices} keys are listed`));
    for (const t of teams) teamAlias.set(t.team_id, t.team_alias);
    teamSel.append(...teams.map((t) => h('option', { value: t.team_id }, teamName(t))));
    const groups = [...new Set(info.data.map((m) => m.model_name))].sort();
    modelSel.append(...groups.map((g) => h('option', { value: g }, g)));
  };

  let seq = 0;
  const load = async () => {
    const f = { start: start.value, end: end.value, key: keySel.value, team: teamSel.value, model: modelSel.value };
    if (!f.start || !f.end) { setStatus(status, 'error', 'Choose the first and the last day.'); return; }
    if (f.start > f.end) { setStatus(status, 'error', 'The first day is after the last one.'); return; }
    const days = daysBetween(f.start, f.end);
    if (days.length > maxDays) { setStatus(status, 'error', `Choose at most ${maxDays} days.`); return; }
    const mine = ++seq;
    show.disabled = true;
    setStatus(status, '', 'Loading…');
    try {
      const sum = summarize(await activity(f), days);
      if (mine !== seq) return;
      render(sum, f);
      setStatus(status, '', `${f.start} to ${f.end} (UTC)${f.key ? ', one key' : ''}${f.team ? ', team ' + (teamAlias.get(f.team) || f.team) : ''}${f.model ? ', model ' + f.model : ''}.`);
    } catch (e) {
      if (mine === seq) { body.replaceChildren(); setStatus(status, 'error', e.message); }
    } finally {
      if (mine === seq) show.disabled = false;
    }
  };

  const render = (sum, f) => {
    const t = sum.total;
    const tile = (label, value, id) => h('div', { class: 'tile', id }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
    const tiles = h('div', { class: 'tiles' },
      tile('Spend', fmtMoney(t.spend), 'usage-spend'), tile('Requests', fmtCount(t.api_requests), 'usage-requests'),
      tile('Failed requests', fmtCount(t.failed_requests), 'usage-failed'), tile('Tokens', fmtCount(t.total_tokens), 'usage-tokens'));
    if (t.api_requests === 0 && t.spend === 0 && t.total_tokens === 0) {
      body.replaceChildren(tiles, h('div', { class: 'empty' }, `No usage recorded from ${f.start} to ${f.end} for these filters. Requests are counted here once they finish.`));
      return;
    }
    const days = sum.days;
    const keyName = (r) => [r.meta.key_alias || h('code', {}, r.name.slice(0, 12) + '…'), r.meta.key_alias ? h('span', { class: 'detail' }, h('code', {}, r.name.slice(0, 12) + '…')) : null];
    body.replaceChildren(tiles,
      h('div', { class: 'charts wide' },
        barChart('chart-spend', 'Spend per day', days, [{ name: 'spend', value: (d) => d.m.spend }], fmtMoney),
        barChart('chart-requests', 'Requests per day', days, [
          { name: 'succeeded', value: (d) => Math.max(0, d.m.api_requests - d.m.failed_requests) },
          { name: 'failed', value: (d) => d.m.failed_requests }], fmtCount),
        barChart('chart-tokens', 'Tokens per day', days, [
          { name: 'prompt', value: (d) => d.m.prompt_tokens }, { name: 'completion', value: (d) => d.m.completion_tokens }], fmtCount)),
      h('h2', {}, 'Per day'),
      h('table', { id: 'usage-days' }, metricHeads('Day (UTC)'),
        h('tbody', {}, days.map((d) => h('tr', { dataset: { date: d.date } }, h('th', { scope: 'row' }, d.date), metricCells(d.m)))),
        h('tfoot', {}, h('tr', {}, h('th', { scope: 'row' }, 'Total'), metricCells(t)))),
      h('h2', {}, 'Per key'),
      table('usage-keys', 'Key', sum.keys, keyName),
      h('h2', {}, 'Per model'),
      table('usage-models', 'Model', sum.models, (r) => r.name),
      h('h2', {}, 'Per team'),
      table('usage-teams', 'Team', sum.teams, (r) => (r.name ? (teamAlias.get(r.name) || r.name) : h('span', { class: 'muted' }, 'no team'))));
  };

  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  main.append(h('h1', {}, 'Usage'),
    h('p', { class: 'muted' }, 'What the gateway counted per day (UTC): requests, tokens and spend, for every key or one key, team or model. Spend is each model\'s input_cost_per_token and output_cost_per_token times the tokens.'),
    form, note, status, body);
  loadChoices().catch((e) => setStatus(note, 'error', `The filters could not list the keys, teams and models: ${e.message}`)).finally(load);
}
