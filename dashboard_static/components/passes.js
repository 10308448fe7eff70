// The pass picker under the viewer: the frame's image and each extra output it wrote
// (compositor passes, the other views of a stereo/multiview render), each with its
// thumbnail. Choosing one shows it in the viewer (EXR through its tone-mapped
// preview); the choice is kept by name while stepping through frames that have it.

import { api, fileUrl } from '../api.js';
import { h, fmtBytes } from '../util.js';

const MAIN = 'main';
const SETTLE_MS = 150;

export class PassPicker {
  /** onChange() is called when the picked image of the current frame changes. */
  constructor(shotId, onChange) {
    this.shotId = shotId;
    this.onChange = onChange;
    this.picked = MAIN;         // "main" or `${kind}:${name}`
    this.number = null;         // the frame the list is for
    this.outputs = [];
    this.loads = new Map();     // frame number → Promise of its outputs
    this.list = h('div.pass-list', { role: 'group', 'aria-label': 'Passes' });
    this.download = h('a.btn.ghost.small', { hidden: true, download: '' }, 'Download pass');
    this.el = h('div.passes', { hidden: true }, this.list, this.download);
  }

  /** The viewer moved to frame f (a Frame from the API, or null). */
  frame(f, number) {
    if (!f || f.status !== 'done' || !f.outputs) {
      clearTimeout(this.timer);
      this.number = number;
      this.outputs = [];
      this.el.hidden = true;
      return;
    }
    if (number === this.number && this.outputs.length === f.outputs) return;
    if (number !== this.number) this.outputs = [];  // never another frame's pass
    this.number = number;
    // Playing through frames asks for no lists: only a frame the viewer stays on.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(number, f.outputs).then((outputs) => {
      if (this.number !== number) return;
      const before = this.url();
      this.outputs = outputs;
      this.render(f);
      if (this.url() !== before) this.onChange();
    }).catch(() => { /* the frame's own image stays; the list comes with the next visit */ }),
    SETTLE_MS);
  }

  load(number, count) {
    let p = this.loads.get(number);
    if (!p || p.count !== count) {
      p = api.frameOutputs(this.shotId, number);
      p.count = count;
      this.loads.set(number, p);
      p.catch(() => this.loads.delete(number));
    }
    return p;
  }

  /** The output shown now, or null for the frame's own image. */
  current() {
    return this.picked === MAIN ? null : this.outputs.find((x) => key(x) === this.picked) || null;
  }

  /** The URL to show for the current frame, or null for the frame's own image. */
  url() {
    const o = this.current();
    return o ? fileUrl(o.preview_url || o.thumbnail_url || o.url) : null;
  }

  pick(k) {
    if (k === this.picked) return;
    this.picked = k;
    this.mark();
    this.onChange();
  }

  mark() {
    const o = this.current();
    const shown = o ? key(o) : MAIN;
    for (const b of this.list.children) b.setAttribute('aria-pressed', String(b.dataset.key === shown));
    this.download.hidden = !o;
    if (o) this.download.href = fileUrl(o.url);
  }

  render(f) {
    const button = (k, label, thumb, title) => h('button.pass', {
      type: 'button', title, dataset: { key: k }, onclick: () => this.pick(k),
    }, thumb ? h('img', { src: fileUrl(thumb), alt: '', loading: 'lazy' }) : h('span.pass-none', null, '?'),
    h('span.pass-name', null, label));
    this.list.replaceChildren(
      button(MAIN, 'Image', f.thumbnail_url, 'The frame as rendered'),
      ...this.outputs.map((o) => button(key(o), o.kind === 'view' ? `View ${o.name}` : o.name,
        o.thumbnail_url, `${o.kind} ${o.name} · ${o.format || 'file'} · ${fmtBytes(o.size)}`)));
    this.mark();
    this.el.hidden = false;
  }
}

function key(o) { return `${o.kind}:${o.name}`; }
