// Shared by the admin UI's pages: DOM helpers that never turn API data
// into HTML, formatting, and the one function that calls the admin API.

export const session = { key: null, authOff: false };

// ---------- small DOM helpers (text only: API data never becomes HTML)

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const svgNS = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export function setStatus(el, kind, text) {
  el.className = 'status' + (kind ? ' ' + kind : '');
  el.textContent = text || '';
}

export function fmtSeconds(sec) {
  if (sec === null || sec === undefined) return '–';
  if (sec < 0.001) return '< 1 ms';
  if (sec < 1) return Math.round(sec * 1000) + ' ms';
  if (sec < 100) return sec.toFixed(1) + ' s';
  return Math.round(sec) + ' s';
}
export function fmtPct(x) {
  if (x === null || x === undefined) return '–';
  if (x > 0 && x < 0.01) return '< 1%';
  return Math.round(x * 100) + '%';
}
export function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleTimeString() + (Date.now() - d.getTime() > 86400e3 ? ' ' + d.toLocaleDateString() : '');
}
// fmtMoney shows an amount in US dollars (LiteLLM's spend unit): cents,
// or two significant digits below a cent so that small spend is not 0.
export function fmtMoney(x) {
  const n = Number(x) || 0;
  if (n !== 0 && Math.abs(n) < 0.01) return '$' + n.toPrecision(2);
  return '$' + n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}
export function fmtCount(x) { return (Number(x) || 0).toLocaleString('en-US'); }
export function fmtDate(iso) { return iso ? new Date(iso).toLocaleString() : '–'; }
export function fmtRate(x) {
  if (!x) return '0';
  return x < 10 ? x.toFixed(2) : x.toFixed(1);
}

// ---------- API

export class APIError extends Error {
  constructor(status, message, param) {
    super(message);
    this.status = status;
    this.param = param || '';
  }
}

// api calls the admin API. It throws APIError with the gateway's own
// message (from LiteLLM's either error shape); a 401 ends the session. Statuses in opts.accept return their
// body instead of throwing (GET /health answers 503 with results).
export async function api(method, path, body, opts = {}) {
  const headers = {};
  if (session.key) headers.Authorization = 'Bearer ' + session.key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new APIError(0, 'The gateway cannot be reached. Check that it is running and try again.');
  }
  let data = null;
  try { data = await res.json(); } catch { /* not JSON */ }
  if (res.ok || (opts.accept || []).includes(res.status)) return data;
  const err = (data && data.error) || {};
  const message = err.message || detailOf(data) || `The gateway answered ${res.status} ${res.statusText}.`;
  if (res.status === 401 && session.key !== null && !opts.login) {
    // The page that holds the login form ends the session (app.js).
    window.dispatchEvent(new Event('maasgate:refused'));
  }
  throw new APIError(res.status, message, err.param);
}

// detailOf reads LiteLLM's other error shapes, which some of its
// endpoints answer: {"detail": {"error": "..."}}, {"detail": "..."}, and
// FastAPI's validation errors {"detail": [{"loc": [...], "msg": "..."}]}.
function detailOf(data) {
  const d = data && data.detail;
  if (!d) return '';
  if (typeof d === 'string') return d;
  if (typeof d.error === 'string') return d.error;
  if (Array.isArray(d)) return d.map((p) => `${(p.loc || []).filter((x) => x !== 'query' && x !== 'body').join('.')}: ${p.msg}`).join('; ');
  return JSON.stringify(d);
}

// poll runs fn now and every ms milliseconds until the returned function
// is called; a run never overlaps the previous one.
export function poll(fn, ms) {
  let stopped = false, timer = null;
  const tick = async () => {
    try { await fn(); } finally { if (!stopped) timer = setTimeout(tick, ms); }
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

export function fieldId(key) { return 'f-' + key.replace(/[^a-z0-9]+/gi, '-'); }

// readNumber reads a number input: null when empty, else a number of 0
// or more (whole when integer), or throws the problem in plain words. Text
// the browser cannot read as a number is an error, not an empty field.
export function readNumber(input, integer) {
  const problem = integer ? 'Enter a whole number of 0 or more' : 'Enter a number of 0 or more';
  if (input.validity && input.validity.badInput) throw new Error(problem + '.');
  const raw = input.value.trim();
  if (raw === '') return null;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) throw new Error(problem + '.');
  return n;
}

// problemsOf splits a validation error ("Invalid model: key: message;

export function splitList(text) { return text.split(',').map((x) => x.trim()).filter(Boolean); }
