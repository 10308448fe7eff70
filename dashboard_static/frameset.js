// The frames of one shot, loaded page by page as they are needed (a shot can have
// tens of thousands). Live `frame` and `job` events are merged in. Emits:
//   change  detail: {from, to}  frames [from, to) changed (a page arrived, a job moved)
//   frame   detail: {index, frame}  a frame was just rendered
//   resize  the number of frames changed

import { api } from './api.js';

export const PAGE = 500;

export class FrameSet extends EventTarget {
  constructor(shot) {
    super();
    this.shotId = shot.id;
    this.start = shot.frame_start ?? 1;
    this.step = shot.frame_step || 1;
    const span = shot.frame_end != null ? Math.floor((shot.frame_end - this.start) / this.step) + 1 : 0;
    this.total = shot.frames_total ?? span;
    this.frames = new Array(this.total);
    this.pages = new Map();   // page number → Promise (loading or loaded)
    this.loadedPages = new Set();
    this.gen = 0;             // bumped on reset/destroy: late answers are dropped
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  get(i) { return this.frames[i]; }

  numberAt(i) {
    const f = this.frames[i];
    return f ? f.number : this.start + i * this.step;
  }

  indexOf(number) {
    const guess = (number - this.start) / this.step;
    if (Number.isInteger(guess) && guess >= 0 && guess < this.total) {
      const f = this.frames[guess];
      if (!f || f.number === number) return guess;
    }
    return this.frames.findIndex((f) => f && f.number === number);
  }

  isLoaded(i) { return this.loadedPages.has(Math.floor(i / PAGE)); }

  allLoaded() {
    return this.loadedPages.size >= Math.ceil(this.total / PAGE);
  }

  /** Make sure frames [a, b) are loaded or loading. */
  ensure(a, b) {
    if (b <= a) return;
    const p0 = Math.max(0, Math.floor(a / PAGE));
    const p1 = Math.floor((Math.min(b, this.total) - 1) / PAGE);
    for (let p = p0; p <= p1; p++) this.loadPage(p);
  }

  loadPage(p) {
    if (this.pages.has(p)) return this.pages.get(p);
    const gen = this.gen;
    const early = this.prefetched && this.prefetched.get(p);
    if (early) this.prefetched.delete(p);
    const promise = (early || api.frames(this.shotId, p * PAGE, PAGE)).then((res) => {
      if (gen !== this.gen) return;
      const list = res.frames || [];
      if (res.total != null && res.total !== this.total) this.resize(res.total);
      for (let k = 0; k < list.length; k++) this.merge(p * PAGE + k, list[k]);
      this.loadedPages.add(p);
      this.emit('change', { from: p * PAGE, to: p * PAGE + list.length });
    }, (err) => {
      if (gen === this.gen) this.pages.delete(p);  // try again on the next ensure()
      throw err;
    });
    promise.catch(() => {});
    this.pages.set(p, promise);
    return promise;
  }

  /** Load every page in the background, one after the other (for the chart and the player). */
  async loadAll() {
    const gen = this.gen;
    const pages = Math.ceil(this.total / PAGE);
    for (let p = 0; p < pages; p++) {
      if (gen !== this.gen) return;
      try { await this.loadPage(p); } catch { return; }
      // Let the browser breathe between pages.
      await new Promise((r) => setTimeout(r, 0));
    }
  }

  resize(total) {
    this.total = total;
    this.frames.length = total;
    this.emit('resize');
  }

  merge(i, f) {
    if (i < 0 || i >= this.total) return;
    const old = this.frames[i];
    // A page answer may be older than a live `frame` event: never un-finish a frame.
    if (old && old.status === 'done' && f.status !== 'done') return;
    this.frames[i] = old ? { ...old, ...f } : f;
  }

  applyFrame(frame) {
    const i = this.indexOf(frame.number);
    if (i < 0) return;
    this.merge(i, { ...frame, status: frame.status || 'done' });
    this.emit('frame', { index: i, frame: this.frames[i] });
  }

  applyJob(job) {
    if (!job.frames || !job.frames.length) return;
    const status = job.status === 'running' ? 'rendering' : job.status === 'done' ? null
      : job.status === 'failed' ? 'failed' : 'queued';
    if (!status) return;  // its frames arrive as `frame` events
    let lo = Infinity, hi = -Infinity;
    for (const n of job.frames) {
      const i = this.indexOf(n);
      if (i < 0) continue;
      const f = this.frames[i];
      if (f && f.status === 'done') continue;
      this.frames[i] = {
        ...(f || { shot_id: this.shotId, number: n }),
        status, job_id: job.id, failure_reason: status === 'failed' ? job.failure_reason : null,
        node_id: job.node_id ?? (f && f.node_id), node_name: job.node_name ?? (f && f.node_name),
      };
      lo = Math.min(lo, i); hi = Math.max(hi, i);
    }
    if (hi >= lo) this.emit('change', { from: lo, to: hi + 1 });
  }

  /** After a reconnect: drop what is known to be loaded and fetch again lazily. */
  reset(shot) {
    this.gen++;
    this.pages.clear();
    this.loadedPages.clear();
    if (shot && shot.frames_total != null && shot.frames_total !== this.total) this.resize(shot.frames_total);
    this.emit('change', { from: 0, to: this.total });
  }

  destroy() { this.gen++; }

  /** Index of the first done frame after i (wrapping), -1 when none, null when it must wait for loading. */
  nextDone(i) {
    for (let k = 1; k <= this.total; k++) {
      const j = (i + k) % this.total;
      const f = this.frames[j];
      if (f && f.status === 'done') return j;
      if (!f && !this.isLoaded(j)) {
        this.ensure(j, j + PAGE);
        return null;
      }
    }
    return -1;
  }

  prevDone(i) {
    for (let k = 1; k <= this.total; k++) {
      const j = (i - k + this.total * 2) % this.total;
      const f = this.frames[j];
      if (f && f.status === 'done') return j;
    }
    return -1;
  }

  lastDone() {
    let best = -1, at = -Infinity;
    for (let i = 0; i < this.total; i++) {
      const f = this.frames[i];
      if (f && f.status === 'done' && (f.rendered_at ?? 0) >= at) { best = i; at = f.rendered_at ?? 0; }
    }
    return best;
  }
}
