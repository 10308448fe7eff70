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

/** The signed-in token, kept in this browser (localStorage), and who it is. It goes
 * in the Authorization header only; what cannot send a header (the event stream,
 * <img>) carries a short-lived read-only ticket instead. No cookies: a page on
 * another site cannot make this browser call the farm (CSRF). */
export const auth = {
  readsLocked: false,   // true when the coordinator runs with --lock-reads
  role: 'anonymous',    // anonymous | node | artist | admin
  name: '',
  priorityCap: null,
  ticket: '',
  get token() {
    try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
  },
  set token(v) {
    try {
      if (v) localStorage.setItem(TOKEN_KEY, v);
      else localStorage.removeItem(TOKEN_KEY);
    } catch { /* private mode: keep it for this page only */ }
  },
  /** May the signed-in user pause, resume, cancel, requeue and re-prioritise this
   * shot? Anonymous visitors see the actions: using one asks them to sign in. */
  mayChange(shot) {
    return ['anonymous', 'admin'].includes(this.role)
      || (this.role === 'artist' && !!shot && shot.submitted_by === this.name);
  },
};

async function request(method, path, body, { sendToken = true, quiet = false } = {}) {
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
    if (res.status === 401 && method === 'GET' && !auth.readsLocked && !(token && sendToken) && !quiet) {
      auth.readsLocked = true;
      store.emit('auth', { reason: msg });
    }
    throw new ApiError(res.status, msg, data && data.field);
  }
  return data;
}

const enc = encodeURIComponent;

/** A file URL (thumbnail, preview, frame) usable in <img src>: adds the read-only
 * ?ticket= when reads are locked (never the token). */
export function fileUrl(url) {
  if (!url) return null;
  if (!auth.readsLocked || !auth.ticket) return url;
  return `${url}${url.includes('?') ? '&' : '?'}ticket=${enc(auth.ticket)}`;
}

/** Who the kept token is (GET /api/auth); shows it on <body data-role>. */
export async function signIn() {
  Object.assign(auth, { role: 'anonymous', name: '', priorityCap: null });
  if (auth.token) {
    try {
      const me = await request('GET', '/api/auth', undefined, { quiet: true });
      Object.assign(auth, { role: me.role, name: me.name, priorityCap: me.priority_cap });
    } catch (e) {
      if (e.status !== 401) throw e;
      // A revoked or mistyped token: stop sending it (every refusal counts toward the
      // coordinator's limit on failed sign-ins) and ask for another.
      auth.token = '';
      store.emit('auth', { reason: 'the token kept in this browser was refused' });
    }
  }
  document.body.dataset.role = auth.role;
  store.emit('role', auth.role);
  return auth.role;
}

/** A fresh read-only ticket for the event stream and images (reads locked only). */
async function refreshTicket() {
  if (!auth.readsLocked || !['artist', 'admin'].includes(auth.role)) { auth.ticket = ''; return; }
  try {
    auth.ticket = (await request('POST', '/api/tickets')).ticket;
  } catch { auth.ticket = ''; }
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

  // Actions (an artist's on her own shots, or an admin's).
  setPriority: (id, priority) => request('PATCH', `/api/shots/${enc(id)}`, { priority }),
  editShot: (id, changes) => request('PATCH', `/api/shots/${enc(id)}`, changes),   // {priority, max_nodes}
  editNode: (id, changes) => request('PATCH', `/api/nodes/${enc(id)}`, changes),   // {tags, schedule}
  shotAction: (id, action) => request('POST', `/api/shots/${enc(id)}/${action}`),  // pause|resume|cancel|requeue
  deleteShot: (id) => request('DELETE', `/api/shots/${enc(id)}`),
  makeMovie: (id) => request('POST', `/api/shots/${enc(id)}/movie`),
  setNodeEnabled: (id, enabled) => request('POST', `/api/nodes/${enc(id)}/${enabled ? 'enable' : 'disable'}`),

  // Admin: credentials, join codes, the audit log (docs/security.md).
  tokens: async () => (await request('GET', '/api/tokens')).tokens || [],
  createToken: (role, name, priorityCap) => request('POST', '/api/tokens', { role, name, priority_cap: priorityCap }),
  revokeToken: (id) => request('DELETE', `/api/tokens/${enc(id)}`),
  joinCodes: async () => (await request('GET', '/api/join-codes')).join_codes || [],
  createJoinCode: (name, tags) => request('POST', '/api/join-codes', { name, tags }),
  audit: async () => (await request('GET', '/api/audit?limit=200')).entries || [],
  // Issue 17: delivery, and webhooks (token required, reads too).
  shotDelivery: (id) => request('GET', `/api/shots/${enc(id)}/delivery`),
  webhooks: async () => (await request('GET', '/api/webhooks')).webhooks || [],
  addWebhook: (url, events) => request('POST', '/api/webhooks', { url, events }),
  deleteWebhook: (id) => request('DELETE', `/api/webhooks/${enc(id)}`),
  webhookDeliveries: async (id) => (await request('GET', `/api/webhooks/${enc(id)}/deliveries`)).deliveries || [],
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
  const url = `/api/events${auth.readsLocked && auth.ticket ? `?ticket=${enc(auth.ticket)}` : ''}`;
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
        await refreshTicket();
        connect();
      }, retryMs);
      retryMs = Math.min(retryMs * 2, 15000);
    } else {
      store.setConn('reconnecting');  // EventSource reconnects by itself
    }
  };
}

let ticketTimer = null;

/** Start: find out who the token is and whether reads need it, then go live. */
export async function start() {
  store.setConn('connecting');
  try { await signIn(); } catch { /* coordinator down: the event stream keeps trying */ }
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
  await refreshTicket();
  clearInterval(ticketTimer);
  ticketTimer = setInterval(refreshTicket, 240000);  // tickets last 10 minutes
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
