// The viewer: one frame at full size (EXR through its tone-mapped preview), and the
// animated preview that plays the rendered frames in order at the shot's frame rate,
// with play/pause, stepping and a scrub bar.

import { fileUrl } from '../api.js';
import { h, icon, setText, fmtDuration, fmtAgo, fmtBytes } from '../util.js';
import { PassPicker } from './passes.js';

const CACHE = 40;     // images kept (full-size previews: keep it modest)
const AHEAD = 10;     // frames preloaded ahead while playing

export class Player {
  constructor(frames, shot, { onIndex } = {}) {
    this.fs = frames;
    this.fps = shot.fps > 0 ? shot.fps : 24;
    this.onIndex = onIndex;
    this.index = -1;
    this.playing = false;
    this.cache = new Map();   // url → {img, ok, done: Promise}
    this.drawn = null;        // url currently on the canvas

    this.canvas = h('canvas.stage-canvas', { width: 16, height: 9 });
    this.msg = h('div.stage-msg');
    this.stage = h('div.stage', { title: 'Double-click for full screen' }, this.canvas, this.msg);
    this.stage.addEventListener('dblclick', () => this.fullscreen());

    this.playBtn = h('button.btn.play', { type: 'button', title: 'Play / pause (space)', onclick: () => this.toggle() });
    this.scrub = h('input.scrub', {
      type: 'range', min: 0, max: Math.max(0, frames.total - 1), step: 1, value: 0, 'aria-label': 'Scrub frames',
    });
    this.scrub.addEventListener('input', () => this.show(Number(this.scrub.value), { user: true }));
    this.pos = h('span.pos.num');
    this.fpsEl = h('span.muted', null, `${this.fps} fps`);
    this.fullLink = h('a.btn.ghost.small', { target: '_blank', rel: 'noopener', hidden: true }, 'Original');
    this.meta = h('div.player-meta');
    this.passes = new PassPicker(shot.id, () => { if (this.index >= 0) this.show(this.index, { keep: true }); });
    this.el = h('div.player', null,
      this.stage,
      h('div.controls', null,
        h('button.btn', { type: 'button', title: 'Previous frame (←)', onclick: () => this.step(-1), 'aria-label': 'Previous frame' }, icon('prev')),
        this.playBtn,
        h('button.btn', { type: 'button', title: 'Next frame (→)', onclick: () => this.step(1), 'aria-label': 'Next frame' }, icon('next')),
        this.scrub, this.pos, this.fpsEl,
        h('button.btn.ghost.small', { type: 'button', title: 'Full screen', onclick: () => this.fullscreen(), 'aria-label': 'Full screen' }, icon('full')),
        this.fullLink),
      this.passes.el,
      this.meta);
    this.tick = this.tick.bind(this);
    this.onFrame = (e) => { if (e.detail.index === this.index) this.show(this.index, { keep: true }); };
    this.onResize = () => { this.scrub.max = String(Math.max(0, this.fs.total - 1)); };
    // A job moved (rendering, failed, requeued): the frame shown may be one of its.
    this.onChange = (e) => {
      const { from, to } = e.detail || {};
      if (this.index >= from && this.index < to) this.show(this.index, { keep: true });
    };
    frames.addEventListener('frame', this.onFrame);
    frames.addEventListener('change', this.onChange);
    frames.addEventListener('resize', this.onResize);
    this.setPlaying(false);
  }

  image(url) {
    let e = this.cache.get(url);
    if (e) {
      this.cache.delete(url); this.cache.set(url, e);  // most recently used last
      return e;
    }
    const img = new Image();
    img.decoding = 'async';
    e = { img, ok: false, failed: false };
    e.done = new Promise((resolve) => {
      img.onload = () => { e.ok = true; resolve(e); };
      img.onerror = () => { e.failed = true; resolve(e); };
    });
    img.src = url;
    this.cache.set(url, e);
    while (this.cache.size > CACHE) this.cache.delete(this.cache.keys().next().value);
    return e;
  }

  urlOf(f) {
    return f && f.status === 'done' ? fileUrl(f.preview_url || f.image_url || f.thumbnail_url) : null;
  }

  draw(e, url) {
    const { img } = e;
    const w = img.naturalWidth, hgt = img.naturalHeight;
    if (this.canvas.width !== w || this.canvas.height !== hgt) {
      this.canvas.width = w; this.canvas.height = hgt;
    }
    const ctx = this.canvas.getContext('2d');
    ctx.clearRect(0, 0, w, hgt);  // an image with alpha must not show the last one through
    ctx.drawImage(img, 0, 0, w, hgt);
    this.drawn = url;
    this.canvas.hidden = false;
  }

  /** Show frame at index i. {user: true} when the user chose it (stops following). */
  show(i, { keep = false, user = false } = {}) {
    if (i < 0 || i >= this.fs.total) return;
    this.index = i;
    this.el.dataset.index = String(i);
    this.fs.ensure(i, i + 1);
    if (Number(this.scrub.value) !== i) this.scrub.value = String(i);
    const f = this.fs.get(i);
    const number = this.fs.numberAt(i);
    this.el.dataset.frame = String(number);
    setText(this.pos, `${number}`);
    this.pos.title = `frame ${i + 1} of ${this.fs.total}`;
    this.passes.frame(f, number);
    const url = this.passes.url() || this.urlOf(f);
    if (!url) {
      this.canvas.hidden = true;
      this.drawn = null;
      const st = f ? f.status : 'loading';
      setText(this.msg, st === 'loading' ? 'Loading…'
        : st === 'failed' ? `Frame ${number} failed: ${f.failure_reason || 'unknown reason'}`
        : `Frame ${number} is ${st === 'rendering' ? `rendering${f.node_name ? ` on ${f.node_name}` : ''}` : 'not rendered yet'}.`);
      this.msg.hidden = false;
    } else if (url !== this.drawn || !keep) {
      const e = this.image(url);
      if (e.ok) { this.draw(e, url); this.msg.hidden = true; } else {
        e.done.then(() => {
          if (this.index !== i) return;
          if (e.ok) { this.draw(e, url); this.msg.hidden = true; } else {
            setText(this.msg, `Frame ${number}: the image did not load.`);
            this.msg.hidden = false;
          }
        });
      }
    }
    this.renderMeta(f, number);
    if (this.onIndex) this.onIndex(i, { user: user || this.playing });
  }

  renderMeta(f, number) {
    const done = f && f.status === 'done';
    this.fullLink.hidden = !done || !f.image_url;
    if (done && f.image_url) this.fullLink.href = fileUrl(f.image_url);
    const items = [['frame', number]];
    if (done) {
      items.push(['node', f.node_name || f.node_id || '—'], ['render', fmtDuration(f.render_time)]);
      if (f.width) items.push(['size', `${f.width}×${f.height}`]);
      if (f.size != null) items.push(['file', fmtBytes(f.size)]);
      items.push(['rendered', fmtAgo(f.rendered_at)]);
    } else if (f) items.push(['status', f.status]);
    this.meta.replaceChildren(...items.map(([k, v]) =>
      h('span.kv', null, h('span.k', null, k), h('span.v', null, String(v)))));
  }

  step(d) {
    this.pause();
    const n = this.fs.total;
    if (!n) return;
    this.show(((this.index < 0 ? 0 : this.index) + d + n) % n, { user: true });
  }

  setPlaying(p) {
    this.playing = p;
    this.el.dataset.playing = p ? 'true' : 'false';
    this.playBtn.replaceChildren(icon(p ? 'pause' : 'play'));
    this.playBtn.setAttribute('aria-label', p ? 'Pause' : 'Play');
  }

  toggle() { if (this.playing) this.pause(); else this.play(); }

  play() {
    if (this.playing || !this.fs.total) return;
    this.setPlaying(true);
    this.last = performance.now();
    this.acc = 0;
    // Start on a rendered frame.
    const cur = this.fs.get(this.index);
    if (!cur || cur.status !== 'done') {
      const j = this.fs.nextDone(this.index < 0 ? -1 : this.index);
      if (j != null && j >= 0) this.show(j);
    }
    requestAnimationFrame(this.tick);
  }

  pause() { this.setPlaying(false); }

  tick(now) {
    if (!this.playing || !this.el.isConnected) { this.setPlaying(false); return; }
    const dur = 1000 / this.fps;
    this.acc += now - this.last;
    this.last = now;
    if (this.acc >= dur) {
      const next = this.fs.nextDone(this.index);
      if (next === -1) { this.pause(); return; }
      if (next != null) {
        const e = this.image(this.urlOf(this.fs.get(next)));
        if (e.ok || e.failed) {
          this.show(next);
          this.acc = Math.min(this.acc - dur, dur);  // no catching up after a stall
        } else this.acc = dur;  // wait for the image: play every frame, in order
      }
      this.preload(next ?? this.index);
    }
    requestAnimationFrame(this.tick);
  }

  preload(from) {
    let i = from;
    for (let k = 0; k < AHEAD; k++) {
      const j = this.fs.nextDone(i);
      if (j == null || j < 0 || j === from) break;
      this.image(this.urlOf(this.fs.get(j)));
      i = j;
    }
  }

  fullscreen() {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (this.stage.requestFullscreen) this.stage.requestFullscreen().catch(() => {});
  }

  destroy() {
    this.setPlaying(false);
    this.fs.removeEventListener('frame', this.onFrame);
    this.fs.removeEventListener('change', this.onChange);
    this.fs.removeEventListener('resize', this.onResize);
    this.cache.clear();
  }
}
