// Boot, the hash router and the header. Each view is a module exporting
// `mount(root, params)` which returns its unmount function.

import { start, restart, auth, fileUrl } from './api.js';
import { store } from './store.js';
import { askToken, manageToken, toast } from './ui.js';
import * as home from './views/home.js';
import * as shots from './views/shots.js';
import * as shot from './views/shot.js';
import * as nodes from './views/nodes.js';
import * as admin from './views/admin.js';
import * as webhooks from './views/webhooks.js';

const routes = [
  { re: /^#?\/?$/, view: home, name: 'home', params: () => ({}) },
  { re: /^#\/shots\/?$/, view: shots, name: 'shots', params: () => ({}) },
  {
    re: /^#\/shots\/([^/]+)(?:\/(-?\d+))?\/?$/, view: shot, name: 'shots',
    params: (m) => ({ id: decodeURIComponent(m[1]), frame: m[2] != null ? Number(m[2]) : null }),
  },
  { re: /^#\/nodes\/?$/, view: nodes, name: 'nodes', params: () => ({}) },
  { re: /^#\/admin\/?$/, view: admin, name: 'admin', params: () => ({}) },
  { re: /^#\/webhooks\/?$/, view: webhooks, name: 'webhooks', params: () => ({}) },
];

let unmount = null;

function route() {
  const hash = location.hash || '#/';
  let match = null, r = null;
  for (const candidate of routes) {
    match = hash.match(candidate.re);
    if (match) { r = candidate; break; }
  }
  if (unmount) { try { unmount(); } catch (e) { console.error(e); } }
  unmount = null;
  const root = document.getElementById('view');
  root.replaceChildren();
  if (!r) {
    root.dataset.view = 'missing';
    root.append(Object.assign(document.createElement('p'), { className: 'empty', textContent: 'Nothing here.' }));
    return;
  }
  root.dataset.view = r.view.name;
  document.title = 'Brender';   // the Shot view names its shot
  for (const a of document.querySelectorAll('.tabs a')) {
    a.classList.toggle('active', a.dataset.route === r.name);
  }
  unmount = r.view.mount(root, r.params(match)) || null;
  window.scrollTo(0, 0);
}

function showConn(state) {
  const el = document.getElementById('conn');
  el.dataset.state = state;
  const labels = { connecting: 'connecting', live: 'live', reconnecting: 'reconnecting…', offline: 'offline' };
  el.querySelector('span').textContent = labels[state] || state;
  el.title = state === 'live'
    ? `Live: updates arrive as they happen${store.version ? ` (coordinator ${store.version})` : ''}`
    : 'Not connected to the coordinator; retrying by itself';
}

let asking = false;
store.addEventListener('auth', async (e) => {
  if (asking) return;
  asking = true;
  const reason = `Sign in with your token (${e.detail && e.detail.reason || 'refused'}).`;
  const t = await askToken(reason);
  asking = false;
  if (t) restart();
  else if (auth.readsLocked) toast('The coordinator needs a token to show anything.', 'error');
});

store.addEventListener('error', (e) => {
  toast('Could not load from the coordinator', 'error', { detail: e.detail && e.detail.message });
});
store.addEventListener('conn', (e) => showConn(e.detail));
store.addEventListener('reload', () => showConn(store.conn));

// Relative times ("12 s ago") are refreshed locally; nothing is polled.
setInterval(() => store.emit('tick'), 5000);

document.getElementById('token-btn').addEventListener('click', async () => {
  const before = auth.token;
  await manageToken();
  if (auth.token !== before) restart();
});

// The header says who is signed in; views show only what that role may do.
store.addEventListener('role', () => {
  const btn = document.getElementById('token-btn');
  btn.textContent = auth.role === 'anonymous' ? 'Sign in' : `${auth.name} (${auth.role})`;
  btn.title = auth.role === 'anonymous' ? 'Sign in with your token' : 'Signed in: change token or sign out';
  route();  // the view again, with what this role may do
});

// The add-on link needs the token in its URL when reads are locked.
store.addEventListener('reload', () => {
  document.getElementById('addon-link').href = fileUrl('/addon/brender_addon.zip');
});

window.addEventListener('hashchange', route);
route();
start();
