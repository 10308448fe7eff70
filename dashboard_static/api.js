// The only module that talks to the coordinator: every fetch and the EventSource live
// here. Answers and events are handed to the store (store.js), which tells the views.
// Contract: docs/api.md.

import { store } from './store.js';
import { throttle } from './util.js';

const TOKEN_KEY = 'brender.token';

export class ApiError extends Error {
  constructor(status, message, field = null) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

/** The farm token, kept in this browser (localStorage). */
export const auth = {
  readsLocked: false,   // true when the coordinator runs with --lock-reads
  get token() {
    try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
  },
  set token(v) {
    try {
      if (v) localStorage.setItem(TOKEN_KEY, v);
      else localStorage.removeItem(TOKEN_KEY);
    } catch { /* private mode: keep it for this page only */ }
  },
};

async function request(method, path, body, { sendToken = method !== 'GET' || auth.readsLocked } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const token = auth.token;
  if (token && sendToken) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, {
      method, headers, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'Cannot reach the coordinator.');
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const msg = (data && data.error) || `${res.status} ${res.statusText || 'error'}`;
    if (res.status === 401 && method === 'GET' && !auth.readsLocked) {
      auth.readsLocked = true;
      store.emit('auth', { reason: msg });
    }
    throw new ApiError(res.status, msg, data && data.field);
  }
  return data;
}

const enc = encodeURIComponent;

/** A file URL (thumbnail, preview, frame) usable in <img src>: adds ?token= when reads are locked. */
export function fileUrl(url) {
  if (!url) return null;
  if (!auth.readsLocked || !auth.token) return url;
  return `${url}${url.includes('?') ? '&' : '?'}token=${enc(auth.token)}`;
}

export const api = {
  farm: () => request('GET', '/api/farm'),
  nodes: async () => (await request('GET', '/api/nodes')).nodes || [],
  shots: async (status) => (await request('GET', `/api/shots${status ? `?status=${enc(status)}` : ''}`)).shots || [],
  shot: (id) => request('GET', `/api/shots/${enc(id)}`),
  frames: (id, offset, limit) => request('GET', `/api/shots/${enc(id)}/frames?offset=${offset}&limit=${limit}`),
  jobs: async (id) => (await request('GET', `/api/shots/${enc(id)}/jobs`)).jobs || [],
  frameOutputs: async (id, number) => (await request('GET', `/api/shots/${enc(id)}/frames/${enc(number)}/outputs`)).outputs || [],
  job: (id) => request('GET', `/api/jobs/${enc(id)}`),
  async latestFrame() {
    try { return await request('GET', '/api/frames/latest'); } catch (e) {
      if (e.status === 404) return null;
      throw e;
    }
  },
  checkToken: () => request('GET', '/api/auth', undefined, { sendToken: true }),

  // Actions (need the farm token).
  setPriority: (id, priority) => request('PATCH', `/api/shots/${enc(id)}`, { priority }),
  shotAction: (id, action) => request('POST', `/api/shots/${enc(id)}/${action}`),  // pause|resume|cancel|requeue
  deleteShot: (id) => request('DELETE', `/api/shots/${enc(id)}`),
  makeMovie: (id) => request('POST', `/api/shots/${enc(id)}/movie`),
  setNodeEnabled: (id, enabled) => request('POST', `/api/nodes/${enc(id)}/${enabled ? 'enable' : 'disable'}`),
};

// ---------------------------------------------------------------------------
// Loading and live updates.

let loadGen = 0;

/** (Re)load the shared state: farm, nodes, shots, the last frame. */
export async function reloadAll() {
  const gen = ++loadGen;
  try {
    const [farm, nodes, shots, latest] = await Promise.all([
      api.farm(), api.nodes(), api.shots(), api.latestFrame(),
    ]);
    if (gen === loadGen) store.load({ farm, nodes, shots, latest });
  } catch (e) {
    if (gen !== loadGen) return;
    if (e.status === 401) store.emit('auth', { reason: e.message });
    else store.emit('error', e);
  }
}

// The farm summary's queue counts change with shots: fetch it again when shot events
// arrive, at most once a second (event driven, not polled).
const refreshFarm = throttle(async () => {
  try { store.setFarm(await api.farm()); } catch { /* next event retries */ }
}, 1000);

async function refreshLatest() {
  try { store.setLatest(await api.latestFrame()); } catch { /* shown on the next frame */ }
}

let es = null;
let retryMs = 1000;
let retryTimer = null;
let firstHelloTimer = null;

function parse(e) {
  try { return JSON.parse(e.data); } catch { return null; }
}

function connect() {
  if (es) es.close();
  clearTimeout(retryTimer);
  const token = auth.token;
  const url = `/api/events${auth.readsLocked && token ? `?token=${enc(token)}` : ''}`;
  es = new EventSource(url);
  const src = es;
  src.addEventListener('hello', (e) => {
    const d = parse(e);
    if (d && d.version) store.version = d.version;
    retryMs = 1000;
    clearTimeout(firstHelloTimer);
    store.setConn('live');
    reloadAll();  // first connect, or the coordinator may have restarted: reload state
  });
  src.addEventListener('frame', (e) => { const d = parse(e); if (d) store.applyFrame(d); });
  src.addEventListener('shot', (e) => {
    const d = parse(e);
    if (!d) return;
    const hadLatest = store.latest && store.latest.shot_id === d.id;
    store.applyShot(d);
    refreshFarm();
    if (d.status === 'deleted' && hadLatest) refreshLatest();
  });
  src.addEventListener('job', (e) => { const d = parse(e); if (d) store.applyJob(d); });
  src.addEventListener('node', (e) => { const d = parse(e); if (d) store.applyNode(d); });
  src.onerror = () => {
    if (src !== es) return;
    if (src.readyState === EventSource.CLOSED) {
      // The browser gave up (HTTP error such as 401, or a proxy's 502): retry ourselves.
      store.setConn('offline');
      src.close();
      retryTimer = setTimeout(async () => {
        try {
          await request('GET', '/api/farm');
        } catch (err) {
          if (err.status === 401) { store.emit('auth', { reason: err.message }); return; }
        }
        connect();
      }, retryMs);
      retryMs = Math.min(retryMs * 2, 15000);
    } else {
      store.setConn('reconnecting');  // EventSource reconnects by itself
    }
  };
}

/** Start: find out whether reads need the token, then go live. */
export async function start() {
  store.setConn('connecting');
  try {
    const res = await fetch('/api/farm', { cache: 'no-store' });
    if (res.status === 401) {
      auth.readsLocked = true;
      if (!auth.token) {
        const data = await res.json().catch(() => ({}));
        store.emit('auth', { reason: data.error || 'This farm needs its token to be viewed.' });
        return;
      }
    }
  } catch { /* coordinator down: EventSource keeps trying */ }
  connect();
  // If the event stream does not say hello soon, still show what we can.
  clearTimeout(firstHelloTimer);
  firstHelloTimer = setTimeout(() => { if (!store.loaded) reloadAll(); }, 3000);
}

/** After the token changed: reconnect so the event stream uses it. */
export function restart() {
  if (es) { es.close(); es = null; }
  return start();
}
