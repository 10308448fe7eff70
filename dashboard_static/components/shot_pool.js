// Which nodes a shot may render on (part of the Shot view): why its queued work waits
// ("waiting: no node has tag gpu"), notices on how it renders (another Blender than the
// file's), what it asks of nodes (tags, device, Blender range, the version it was
// saved with) and its cap on nodes at once, which an admin may change.

import { api } from '../api.js';
import { store } from '../store.js';
import { act } from '../ui.js';
import { h, fill, setText } from '../util.js';

const ACTIVE = ['queued', 'active'];

/** The waiting line as every view shows it, or '' when the shot is not waiting. */
export function waitingText(shot) {
  return shot && shot.waiting && ACTIVE.includes(shot.status) ? `waiting: ${shot.waiting}` : '';
}

export class ShotPool {
  constructor() {
    this.waiting = h('div.waiting-reason', { role: 'status', hidden: true });
    this.notices = h('ul.notices', { hidden: true });
    this.facts = h('div.pool-facts');
    this.maxNodes = h('input.max-nodes', {
      type: 'number', min: 1, step: 1, placeholder: 'any', 'aria-label': 'Most nodes at once',
      title: 'Most nodes rendering this shot at once (empty: no limit)',
    });
    this.maxNodes.addEventListener('change', () => this.setMaxNodes());
    this.maxNodes.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); this.maxNodes.blur(); } });
    this.el = h('div.shot-pool', null, this.waiting, this.notices,
      h('div.pool-row', null, this.facts,
        h('label.prio-label', null, 'Max nodes', this.maxNodes)));
    this.shot = null;
    this.key = null;
  }

  update(shot) {
    this.shot = shot;
    const text = waitingText(shot);
    setText(this.waiting, text);
    this.waiting.hidden = !text;
    const notices = ACTIVE.includes(shot.status) || shot.status === 'paused' ? (shot.notices || []) : [];
    const key = JSON.stringify([notices, shot.requires_tags, shot.prefers_tags, shot.device,
      shot.blender, shot.blender_saved_with, shot.nodes_rendering]);
    if (key !== this.key) {
      this.key = key;
      fill(this.notices, notices.map((n) => h('li.notice', null, n)));
      this.notices.hidden = !notices.length;
      this.drawFacts(shot);
    }
    if (document.activeElement !== this.maxNodes) this.maxNodes.value = shot.max_nodes ?? '';
  }

  drawFacts(s) {
    const kv = (k, v, title) => h('span.kv', { title, dataset: { key: k } }, h('span.k', null, k), h('span.v', null, v));
    const tags = (list) => (list || []).map((t) => h('span.tag', null, t));
    fill(this.facts,
      kv('needs tags', (s.requires_tags || []).length ? tags(s.requires_tags) : 'none',
        'a node must have all of them'),
      (s.prefers_tags || []).length ? kv('prefers tags', tags(s.prefers_tags), 'nodes with these take it first') : null,
      kv('device', s.device || 'file’s own', 'cpu, gpu or any'),
      kv('Blender', s.blender || 'any', 'the versions it may render with'),
      s.blender_saved_with ? kv('saved with', s.blender_saved_with, 'the Blender the file was saved with') : null,
      kv('nodes now', String(s.nodes_rendering ?? 0), 'nodes rendering it now'));
  }

  async setMaxNodes() {
    const s = this.shot;
    const raw = this.maxNodes.value.trim();
    const v = raw === '' ? null : Number(raw);
    if ((v !== null && !(Number.isInteger(v) && v >= 1)) || v === (s.max_nodes ?? null)) {
      this.maxNodes.value = s.max_nodes ?? '';
      return;
    }
    const res = await act(`Max nodes of ${s.name}`, () => api.editShot(s.id, { max_nodes: v }),
      { success: `${s.name}: ${v === null ? 'no limit on nodes' : `at most ${v} node${v === 1 ? '' : 's'}`}` });
    if (res && res.id) store.applyShot(res);
    else this.maxNodes.value = this.shot.max_nodes ?? '';
  }
}
