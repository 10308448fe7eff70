// The frames whose job failed for good, grouped by the reason the node gave; a frame
// number picks that frame in the viewer.

import { h, fill, setText, fmtFrames, rafThrottle } from '../util.js';

export class FailedFrames {
  constructor(frames, { onPickFrame } = {}) {
    this.fs = frames;
    this.onPickFrame = onPickFrame;
    this.list = h('ul.failed-list');
    this.count = h('span.badge');
    this.el = h('section.card.failed-frames', { 'aria-label': 'Failed frames', hidden: true },
      h('div.card-head', null, h('h2', null, 'Failed frames'), this.count), this.list);
    this.render = rafThrottle(() => this.draw());
    frames.addEventListener('change', this.render);
    frames.addEventListener('frame', this.render);
  }

  draw() {
    const byReason = new Map();
    for (let i = 0; i < this.fs.total; i++) {
      const f = this.fs.get(i);
      if (!f || f.status !== 'failed') continue;
      const reason = f.failure_reason || 'unknown reason';
      if (!byReason.has(reason)) byReason.set(reason, []);
      byReason.get(reason).push(f.number);
    }
    const total = [...byReason.values()].reduce((n, l) => n + l.length, 0);
    this.el.hidden = total === 0;
    setText(this.count, String(total));
    fill(this.list, [...byReason].map(([reason, numbers]) => h('li', { dataset: { reason } },
      h('div.failure', null, reason),
      h('span.muted', null, `${numbers.length} frame${numbers.length === 1 ? '' : 's'}: `),
      this.onPickFrame
        ? h('a.mono', { href: '#', onclick: (e) => { e.preventDefault(); this.onPickFrame(numbers[0]); } }, fmtFrames(numbers))
        : h('span.mono', null, fmtFrames(numbers)))));
  }

  destroy() {
    this.fs.removeEventListener('change', this.render);
    this.fs.removeEventListener('frame', this.render);
  }
}
