// Shared UI pieces: toasts, the token dialog, the confirmation dialog and `act`, which
// runs an action that needs the farm token and tells the user how it went.

import { auth, signIn } from './api.js';
import { h } from './util.js';

export function toast(message, kind = 'info', { detail = null, action = null, ms } = {}) {
  const box = document.getElementById('toasts');
  const close = () => el.remove();
  const el = h('div.toast', { class: kind, role: kind === 'error' ? 'alert' : 'status' },
    h('div.toast-text', null, h('strong', null, message), detail ? h('span.detail', null, detail) : null),
    action ? h('button.btn.small', { type: 'button', onclick: () => { close(); action.run(); } }, action.label) : null,
    h('button.btn.ghost.small', { type: 'button', 'aria-label': 'Dismiss', onclick: close }, '×'));
  box.append(el);
  while (box.children.length > 5) box.firstChild.remove();
  setTimeout(close, ms ?? (kind === 'error' ? 12000 : 4000));
  return el;
}

let tokenPromise = null;

/** Ask for the farm token. Resolves to the token, '' when forgotten, null when cancelled. */
export function askToken(reason) {
  if (tokenPromise) return tokenPromise;
  const dlg = document.getElementById('token-dialog');
  const form = dlg.querySelector('form');
  const input = form.elements.token;
  dlg.querySelector('[data-role=reason]').textContent =
    reason || 'Sign in with your token (an admin gives it). It is kept in this browser only.';
  dlg.querySelector('[data-role=forget]').hidden = !auth.token;
  input.value = '';
  dlg.returnValue = '';
  tokenPromise = new Promise((resolve) => {
    dlg.addEventListener('close', () => {
      tokenPromise = null;
      const v = dlg.returnValue;
      if (v === 'save' && input.value.trim()) {
        auth.token = input.value.trim();
        resolve(auth.token);
      } else if (v === 'forget') {
        auth.token = '';
        resolve('');
      } else resolve(null);
    }, { once: true });
  });
  dlg.showModal();
  input.focus();
  return tokenPromise;
}

/** Ask the user to confirm; resolves true/false. */
export function confirm({ title, body, ok = 'OK' }) {
  const dlg = document.getElementById('confirm-dialog');
  dlg.querySelector('[data-role=title]').textContent = title;
  dlg.querySelector('[data-role=body]').textContent = body || '';
  dlg.querySelector('[data-role=ok]').textContent = ok;
  dlg.returnValue = '';
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.showModal();
    dlg.querySelector('[value=cancel]').focus();
  });
}

/**
 * Run an action that needs the farm token. The token is asked once (when none is
 * kept); a refusal shows the coordinator's own message.
 * Returns the answer, or undefined when the action failed.
 */
export async function act(label, fn, { success } = {}) {
  if (!auth.token) await askToken();
  try {
    const res = await fn();
    toast(success || `${label}: done`, 'ok');
    return res;
  } catch (e) {
    const refused = e.status === 401 || e.status === 403;
    toast(`${label} ${refused ? 'refused' : 'failed'}`, 'error', {
      detail: e.message,
      action: refused ? { label: 'Enter token', run: () => askToken() } : null,
    });
    return undefined;
  }
}

/** The header's sign-in button: set, check or forget the token. */
export async function manageToken() {
  const t = await askToken(auth.token
    ? `Signed in as ${auth.name || 'nobody'} (${auth.role}). Enter another token, or sign out.`
    : undefined);
  if (t === '') { await signIn(); toast('Signed out'); return; }
  if (!t) return;
  try {
    const role = await signIn();
    if (role === 'anonymous') toast('Token refused', 'error', { detail: 'The coordinator does not know this token.' });
    else toast(`Signed in as ${auth.name} (${role})`, 'ok');
  } catch (e) {
    toast('Could not check the token', 'error', { detail: e.message });
  }
}
