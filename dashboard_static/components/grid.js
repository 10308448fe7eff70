// The frame grid: a virtual list. Only the rows in view (plus a few) exist in the DOM;
// cells are recycled while scrolling and thumbnails load only for cells in view, so a
// 10,000 frame shot stays light.

import { fileUrl } from '../api.js';
import { h, rafThrottle, fmtDuration } from '../util.js';

const GAP = 4;
const LABEL = 18;      // px under each thumbnail
const OVERSCAN = 2;    // rows above and below the view

export class FrameGrid {
  constructor(frames, { onSelect, minCell = 128 } = {}) {
    this.fs = frames;
    this.onSelect = onSelect;
    this.minCell = minCell;
    this.aspect = 16 / 9;
    this.cols = 1; this.cellW = minCell; this.cellH = minCell; this.rows = 0;
    this.cells = new Map();   // index → cell element
    this.pool = [];
    this.selected = -1;
    this.filter = null;   // a predicate on frames: only those are shown (setFilter)
    this.order = null;    // the frame indices shown while filtered

    this.space = h('div.fgrid-space');
    this.el = h('div.fgrid', { tabindex: 0, role: 'grid', 'aria-label': 'Frames' }, this.space);
    this.el.addEventListener('scroll', rafThrottle(() => this.render(false)), { passive: true });
    this.el.addEventListener('click', (e) => {
      const c = e.target.closest('.fcell');
      if (c && this.onSelect) this.onSelect(Number(c.dataset.index));
    });
    this.refresh = rafThrottle(() => this.render(true));
    this.onChange = () => {
      this.checkAspect();
      if (this.filter) this.layout(); else this.refresh();
    };
    this.onResize = () => this.layout();
    frames.addEventListener('change', this.onChange);
    frames.addEventListener('frame', this.onChange);
    frames.addEventListener('resize', this.onResize);
    this.ro = new ResizeObserver(() => this.layout());
    this.ro.observe(this.el);
  }

  /** Use the frames' own aspect ratio once one is known. */
  checkAspect() {
    if (this.aspectKnown) return;
    for (const i of this.cells.keys()) {
      const f = this.fs.get(i);
      if (f && f.width && f.height) {
        this.aspect = Math.max(0.5, Math.min(3, f.width / f.height));
        this.aspectKnown = true;
        this.layout();
        return;
      }
    }
  }

  /** Show only the frames `pred` accepts (null: all of them). */
  setFilter(pred) {
    this.filter = pred;
    for (const c of this.cells.values()) { c.hidden = true; this.pool.push(c); }
    this.cells.clear();
    this.layout();
  }

  get count() { return this.order ? this.order.length : this.fs.total; }

  layout() {
    const w = this.el.clientWidth;
    this.order = null;
    if (this.filter) {
      this.order = [];
      for (let i = 0; i < this.fs.total; i++) {
        const f = this.fs.get(i);
        if (f && this.filter(f)) this.order.push(i);
      }
      this.el.dataset.filtered = String(this.order.length);
    } else delete this.el.dataset.filtered;
    if (!w) return;
    this.cols = Math.max(1, Math.floor((w + GAP) / (this.minCell + GAP)));
    this.cellW = (w - GAP * (this.cols - 1)) / this.cols;
    this.cellH = Math.round(this.cellW / this.aspect) + LABEL;
    this.rows = Math.ceil(this.count / this.cols);
    this.space.style.height = `${Math.max(0, this.rows * (this.cellH + GAP) - GAP)}px`;
    this.render(true);
  }

  render(force) {
    const rowH = this.cellH + GAP;
    const top = this.el.scrollTop, height = this.el.clientHeight || 400;
    const r0 = Math.max(0, Math.floor(top / rowH) - OVERSCAN);
    const r1 = Math.min(this.rows - 1, Math.ceil((top + height) / rowH) + OVERSCAN);
    const a = r0 * this.cols, b = Math.min(this.count, (r1 + 1) * this.cols);
    if (!this.order) this.fs.ensure(a, b);   // filtered: every frame is loaded already
    for (const [i, c] of this.cells) {
      if (i < a || i >= b) { this.cells.delete(i); c.hidden = true; this.pool.push(c); }
    }
    for (let i = a; i < b; i++) {
      let c = this.cells.get(i);
      const fresh = !c;
      if (!c) {
        c = this.pool.pop() || this.makeCell();
        c.hidden = false;
        this.cells.set(i, c);
      }
      if (fresh || force) this.updateCell(c, i);
    }
  }

  makeCell() {
    const img = h('img', { alt: '', decoding: 'async', draggable: 'false' });
    img.addEventListener('load', () => img.classList.add('ready'));
    const c = h('div.fcell', { role: 'gridcell' }, img, h('span.fnum'), h('span.fdot'));
    this.space.append(c);
    return c;
  }

  updateCell(c, i) {
    const col = i % this.cols, row = Math.floor(i / this.cols);
    const x = col * (this.cellW + GAP), y = row * (this.cellH + GAP);
    c.style.transform = `translate(${x}px, ${y}px)`;
    c.style.width = `${this.cellW}px`;
    c.style.height = `${this.cellH}px`;
    const k = this.order ? this.order[i] : i;   // the frame's index in the frame set
    const f = this.fs.get(k);
    const number = this.fs.numberAt(k);
    const status = f ? f.status : (this.fs.isLoaded(k) ? 'queued' : 'loading');
    c.dataset.index = k;
    c.dataset.number = number;
    if (c.dataset.status !== status) c.dataset.status = status;
    c.classList.toggle('selected', k === this.selected);
    c.classList.toggle('suspicious', !!(f && f.suspicious));
    const img = c.firstChild;
    const url = status === 'done' ? fileUrl(f.thumbnail_url) : null;
    if (img.dataset.src !== (url || '')) {
      img.dataset.src = url || '';
      img.classList.remove('ready');
      if (url) { img.fetchPriority = 'high'; img.src = url; } else img.removeAttribute('src');
    }
    const label = c.children[1];
    const text = String(number);
    if (label.textContent !== text) label.textContent = text;
    c.title = status === 'done'
      ? `Frame ${number} · ${fmtDuration(f.render_time)}${f.node_name ? ` · ${f.node_name}` : ''}`
      : status === 'failed' ? `Frame ${number} · failed: ${f.failure_reason || 'unknown reason'}`
        : `Frame ${number} · ${status}${f && f.node_name && status === 'rendering' ? ` on ${f.node_name}` : ''}`;
    if (f && f.suspicious) c.title += ` · suspicious: ${f.suspicious}`;
  }

  select(i, { scroll = true } = {}) {
    this.selected = i;
    for (const c of this.cells.values()) c.classList.toggle('selected', Number(c.dataset.index) === i);
    if (scroll) this.scrollTo(this.order ? this.order.indexOf(i) : i);
  }

  /** Bring frame i into view if it is not. */
  scrollTo(i) {
    if (i < 0 || !this.rows) return;
    const rowH = this.cellH + GAP;
    const y = Math.floor(i / this.cols) * rowH;
    const top = this.el.scrollTop, height = this.el.clientHeight;
    if (y < top) this.el.scrollTop = y;
    else if (y + this.cellH > top + height) this.el.scrollTop = y + this.cellH - height;
  }

  destroy() {
    this.ro.disconnect();
    this.fs.removeEventListener('change', this.onChange);
    this.fs.removeEventListener('frame', this.onChange);
    this.fs.removeEventListener('resize', this.onResize);
  }
}
