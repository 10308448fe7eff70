// Delivery to studio storage (issue 17): where the shot's frames are copied, how many
// are delivered, pending or failing, and the last error (retried by the coordinator).

import { api } from '../api.js';
import { h, fill, setText, throttle } from '../util.js';

export class DeliveryPanel {
  constructor(shotId) {
    this.shotId = shotId;
    this.where = h('code.delivery-where');
    this.facts = h('div.facts');
    this.error = h('div.failure.delivery-error', { hidden: true });
    this.el = h('section.card.delivery', { 'aria-label': 'Delivery', hidden: true },
      h('div.card-head', null, h('h2', null, 'Delivery'), h('span.spacer'), this.where),
      this.facts, this.error);
    this.reload = throttle(() => this.load(), 1000);
  }

  /** The shot changed: read its delivery again (at most once a second). */
  update(shot) {
    if (!shot.output_template) { this.el.hidden = true; return; }
    this.el.hidden = false;
    setText(this.where, `${shot.output_root}: ${shot.output_template}`);
    this.reload();
  }

  async load() {
    let d;
    try { d = await api.shotDelivery(this.shotId); } catch { return; }
    const kv = (k, v, cls = '') => h(`span.kv${cls}`, { dataset: { key: k } }, h('span.k', null, k), h('span.v', null, String(v)));
    this.el.dataset.state = d.failed ? 'failing' : d.pending ? 'pending' : 'delivered';
    fill(this.facts, kv('delivered', d.delivered), kv('pending', d.pending),
      kv('failing', d.failed, d.failed ? '.bad' : ''), kv('failures so far', d.failures));
    this.error.hidden = !d.last_error;
    setText(this.error, d.last_error ? `Last error (retried): ${d.last_error}` : '');
  }
}
