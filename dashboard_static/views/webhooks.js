// Webhooks (issue 17): the URLs that hear of shots done or failed and nodes lost; add
// one, remove one, and see each one's deliveries with their status. Everything here
// needs the farm token, reads included.

import { api } from '../api.js';
import { act, confirm, toast } from '../ui.js';
import { h, fill, setText, fmtAgo } from '../util.js';

export const name = 'webhooks';
const EVENTS = ['shot.done', 'shot.failed', 'node.lost'];

export function mount(root) {
  let alive = true;
  const list = h('tbody');
  const empty = h('p.empty', { hidden: true }, 'No webhooks yet.');
  const url = h('input.webhook-url', { type: 'url', required: true, placeholder: 'https://hooks.example.com/brender', 'aria-label': 'Webhook URL' });
  const boxes = EVENTS.map((e) => h('input', { type: 'checkbox', checked: true, value: e }));
  const secretOut = h('p.webhook-secret', { hidden: true });
  const form = h('form.webhook-form', { onsubmit: add },
    url, ...EVENTS.map((e, i) => h('label.check', null, boxes[i], e)),
    h('button.btn.primary', { type: 'submit' }, 'Add webhook'));
  const deliveries = h('section.card.deliveries', { 'aria-label': 'Deliveries', hidden: true });
  root.append(h('section.card.webhooks', { 'aria-label': 'Webhooks' },
    h('div.card-head', null, h('h2', null, 'Webhooks')), form, secretOut,
    h('div.table-wrap', null, h('table.grid-table', null,
      h('thead', null, h('tr', null, h('th', null, 'URL'), h('th', null, 'Events'), h('th', null, 'Added'), h('th', null, ''))),
      list)), empty), deliveries);

  async function load() {
    let hooks;
    try { hooks = await api.webhooks(); } catch (e) {
      if (alive) fill(list, h('tr', null, h('td', { colspan: 4 }, `Could not list the webhooks: ${e.message}`)));
      return;
    }
    if (!alive) return;
    empty.hidden = hooks.length > 0;
    fill(list, hooks.map((w) => h('tr', { dataset: { webhookId: w.id } },
      h('td.mono', null, w.url), h('td', null, w.events.join(', ')), h('td', null, fmtAgo(w.created_at)),
      h('td.actions', null,
        h('button.btn.small', { type: 'button', onclick: () => show(w) }, 'Deliveries'),
        h('button.btn.small.danger', { type: 'button', onclick: () => remove(w) }, 'Remove')))));
  }

  async function add(e) {
    e.preventDefault();
    const events = boxes.filter((b) => b.checked).map((b) => b.value);
    const res = await act('Add webhook', () => api.addWebhook(url.value.trim(), events), { success: 'Webhook added' });
    if (!res || !res.id) return;
    url.value = '';
    secretOut.hidden = false;
    fill(secretOut, 'Its deliveries are signed (X-Brender-Signature) with this secret, shown only now: ',
      h('code', null, res.secret));
    load();
  }

  async function remove(w) {
    if (!await confirm({ title: 'Remove this webhook?', body: w.url, ok: 'Remove' })) return;
    const res = await act('Remove webhook', () => api.deleteWebhook(w.id), { success: 'Webhook removed' });
    if (res !== undefined) { deliveries.hidden = true; load(); }
  }

  async function show(w) {
    let rows;
    try { rows = await api.webhookDeliveries(w.id); } catch (e) { toast('Could not list its deliveries', 'error', { detail: e.message }); return; }
    deliveries.hidden = false;
    fill(deliveries, h('div.card-head', null, h('h2', null, 'Deliveries'), h('span.spacer'), h('span.muted.mono', null, w.url)),
      rows.length ? h('div.table-wrap', null, h('table.grid-table', null,
        h('thead', null, h('tr', null, ...['Event', 'Status', 'Attempts', 'Answer', 'When'].map((t) => h('th', null, t)))),
        h('tbody', null, rows.map((d) => h('tr', { dataset: { deliveryId: d.id, status: d.status } },
          h('td', null, d.event), h('td', null, h('span.pill', { dataset: { status: d.status } }, d.status)),
          h('td.num', null, String(d.attempts)),
          h('td', null, d.last_error || (d.response_status ? `HTTP ${d.response_status}` : '—')),
          h('td', null, fmtAgo(d.delivered_at || d.created_at)))))))
        : h('p.empty', null, 'Nothing sent yet.'));
    setText(deliveries.querySelector('h2'), `Deliveries (${rows.length})`);
  }

  load();
  return () => { alive = false; };
}
