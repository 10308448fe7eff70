// Admin view (issue 18): tokens (make, revoke; a node's revocation closes its channel
// and requeues its job), node join codes, and the audit log. Admins only: the
// coordinator refuses everyone else (403), and the tab is hidden from them.
// Every value from the coordinator goes in as text (h(), textContent), never as HTML.

import { api, auth } from '../api.js';
import { act, confirm } from '../ui.js';
import { h, fill } from '../util.js';

export const name = 'admin';

function when(t) {
  return t ? new Date(t * 1000).toLocaleString() : '';
}

export function mount(root) {
  if (auth.role !== 'admin') {
    root.append(h('p.empty', null, 'Sign in with an admin token to manage tokens, nodes and the audit log.'));
    return null;
  }
  const tokensBody = h('tbody');
  const codesBody = h('tbody');
  const auditBody = h('tbody');
  const shown = h('div', { dataset: { role: 'secret' } });

  const tokenName = h('input', { name: 'name', required: true, maxlength: 100, autocomplete: 'off' });
  const tokenRole = h('select', { name: 'role' }, h('option', { value: 'artist' }, 'artist'), h('option', { value: 'admin' }, 'admin'));
  const tokenCap = h('input', { name: 'cap', type: 'number', min: 0, max: 100, placeholder: 'none' });
  const tokenForm = h('form.admin-form', { dataset: { form: 'token' } },
    h('label', null, 'Name', tokenName), h('label', null, 'Role', tokenRole),
    h('label', null, 'Priority cap', tokenCap),
    h('button.btn.primary', { type: 'submit' }, 'Make token'));
  tokenForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const cap = tokenCap.value === '' || tokenRole.value !== 'artist' ? null : Number(tokenCap.value);
    const made = await act(`Token for ${tokenName.value}`, () => api.createToken(tokenRole.value, tokenName.value, cap));
    if (made) {
      showSecret(`${made.role} token for ${made.name} (shown once):`, made.token);
      tokenName.value = '';
      load();
    }
  });

  const codeName = h('input', { name: 'name', maxlength: 100, autocomplete: 'off', placeholder: 'its own' });
  const codeTags = h('input', { name: 'tags', autocomplete: 'off', placeholder: 'gpu, big-ram' });
  const codeForm = h('form.admin-form', { dataset: { form: 'join-code' } },
    h('label', null, 'Node name', codeName), h('label', null, 'Tags', codeTags),
    h('button.btn.primary', { type: 'submit' }, 'Make join code'));
  codeForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const tags = codeTags.value.split(',').map((t) => t.trim()).filter(Boolean);
    const made = await act('Join code', () => api.createJoinCode(codeName.value, tags));
    if (made) {
      showSecret('On the node (good once, for a day):',
        `brender-node --coordinator ${location.origin} --join ${made.code}`);
      load();
    }
  });

  function showSecret(label, secret) {
    fill(shown, h('p', null, label), h('code.secret', null, secret));
  }

  function tokenRow(t) {
    const revoke = h('button.btn.small.danger', { type: 'button', hidden: !!t.revoked_at }, 'Revoke');
    revoke.addEventListener('click', async () => {
      const what = t.role === 'node' ? `node ${t.name}: its channel closes and its job is requeued` : `${t.role} ${t.name}`;
      if (!await confirm({ title: `Revoke ${t.name}?`, body: `Revoke the token of ${what}.`, ok: 'Revoke' })) return;
      if (await act(`Revoke ${t.name}`, () => api.revokeToken(t.id))) load();
    });
    return h('tr', { dataset: { credentialId: t.id } },
      h('td', null, t.name), h('td', null, t.role), h('td.num', null, t.priority_cap ?? ''),
      h('td', null, t.created_by), h('td', null, when(t.created_at)),
      h('td', null, t.revoked_at ? `revoked ${when(t.revoked_at)}` : 'active'),
      h('td.actions', null, revoke));
  }

  function codeRow(c) {
    return h('tr', null, h('td', null, c.name || '(its own)'), h('td', null, (c.tags || []).join(', ')),
      h('td', null, c.created_by), h('td', null, when(c.expires_at)),
      h('td', null, c.used_at ? `used ${when(c.used_at)}` : 'unused'));
  }

  function auditRow(e) {
    return h('tr', null, h('td', null, when(e.at)), h('td', null, e.actor || '(nobody)'),
      h('td', null, e.role), h('td', null, `${e.method} ${e.path}`), h('td.num', null, e.status),
      h('td', null, e.address));
  }

  const table = (heads, body) => h('div.table-wrap', null, h('table.table', null,
    h('thead', null, h('tr', null, heads.map((x) => h('th', null, x)))), body));

  root.append(h('div.admin-grid', null,
    h('section.card', { 'aria-label': 'Tokens' }, h('div.card-head', null, h('h2', null, 'Tokens')),
      tokenForm, shown,
      table(['Name', 'Role', 'Cap', 'Made by', 'Made', 'State', ''], tokensBody)),
    h('section.card', { 'aria-label': 'Join codes' }, h('div.card-head', null, h('h2', null, 'Node join codes')),
      codeForm, table(['Node', 'Tags', 'Made by', 'Expires', 'State'], codesBody)),
    h('section.card', { 'aria-label': 'Audit log' }, h('div.card-head', null, h('h2', null, 'Audit log')),
      table(['When', 'Who', 'Role', 'Call', 'Answer', 'From'], auditBody))));

  let alive = true;
  async function load() {
    try {
      const [tokens, codes, audit] = await Promise.all([api.tokens(), api.joinCodes(), api.audit()]);
      if (!alive) return;
      fill(tokensBody, tokens.map(tokenRow));
      fill(codesBody, codes.map(codeRow));
      fill(auditBody, audit.map(auditRow));
    } catch (e) {
      if (alive) fill(auditBody, h('tr', null, h('td', { colspan: 6 }, `Could not load: ${e.message}`)));
    }
  }
  load();
  return () => { alive = false; };
}
