// The frames grid's filter (issue 17): all frames, or only those the frame checks
// flagged as suspicious (one colour, NaN/Inf pixels, far smaller than their
// neighbours), with how many there are.

import { h, setText, rafThrottle } from '../util.js';

const FILTERS = {
  all: null,
  suspicious: (f) => !!f.suspicious,
};

export class FrameFilter {
  constructor(frames, grid) {
    this.fs = frames;
    this.grid = grid;
    this.select = h('select.frame-filter', { 'aria-label': 'Show frames', title: 'Which frames the grid shows' },
      h('option', { value: 'all' }, 'All frames'),
      h('option', { value: 'suspicious' }, 'Suspicious'));
    this.count = h('span.badge.suspicious-count', { hidden: true, title: 'Frames the checks flagged' });
    this.el = h('span.frame-filter-wrap', null, this.count, this.select);
    this.select.addEventListener('change', () => grid.setFilter(FILTERS[this.select.value]));
    this.render = rafThrottle(() => this.draw());
    frames.addEventListener('change', this.render);
    frames.addEventListener('frame', this.render);
  }

  draw() {
    let n = 0;
    for (let i = 0; i < this.fs.total; i++) {
      const f = this.fs.get(i);
      if (f && f.suspicious) n++;
    }
    this.count.hidden = n === 0;
    setText(this.count, `${n} suspicious`);
  }

  destroy() {
    this.fs.removeEventListener('change', this.render);
    this.fs.removeEventListener('frame', this.render);
  }
}
