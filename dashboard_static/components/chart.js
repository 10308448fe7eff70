// Render time per frame, drawn on a canvas (no libraries). One bar per frame, or the
// slowest frame of each pixel column when there are more frames than pixels.
// Hover tells the frame and its time; a click picks the frame.

import { h, rafThrottle, fmtDuration, setText } from '../util.js';

const PAD_L = 44, PAD_R = 8, PAD_T = 8, PAD_B = 18;

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 3, 5, 7.5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function css(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

export class TimeChart {
  constructor(frames, { onPick } = {}) {
    this.fs = frames;
    this.onPick = onPick;
    this.selected = -1;
    this.canvas = h('canvas.chart-canvas');
    this.tip = h('div.chart-tip', { hidden: true });
    this.summary = h('div.chart-summary.muted');
    this.el = h('div.chart', null, h('div.chart-box', null, this.canvas, this.tip), this.summary);
    this.redraw = rafThrottle(() => this.draw());
    frames.addEventListener('change', this.redraw);
    frames.addEventListener('frame', this.redraw);
    frames.addEventListener('resize', this.redraw);
    this.ro = new ResizeObserver(this.redraw);
    this.ro.observe(this.el);
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
    this.canvas.addEventListener('mouseleave', () => { this.tip.hidden = true; });
    this.canvas.addEventListener('click', (e) => {
      const i = this.indexAt(e);
      if (i >= 0 && this.onPick) this.onPick(i);
    });
  }

  indexAt(e) {
    const r = this.canvas.getBoundingClientRect();
    const x = e.clientX - r.left - PAD_L;
    const w = r.width - PAD_L - PAD_R;
    if (x < 0 || x > w || !this.fs.total) return -1;
    return Math.min(this.fs.total - 1, Math.floor((x / w) * this.fs.total));
  }

  hover(e) {
    const i = this.indexAt(e);
    if (i < 0) { this.tip.hidden = true; return; }
    const f = this.fs.get(i);
    const n = this.fs.numberAt(i);
    setText(this.tip, f && f.status === 'done'
      ? `frame ${n} · ${fmtDuration(f.render_time)}${f.node_name ? ` · ${f.node_name}` : ''}`
      : `frame ${n} · ${f ? f.status : '…'}`);
    const r = this.canvas.getBoundingClientRect();
    const x = e.clientX - r.left;
    this.tip.style.left = `${Math.min(Math.max(0, x + 10), r.width - 160)}px`;
    this.tip.hidden = false;
  }

  setSelected(i) {
    if (i === this.selected) return;
    this.selected = i;
    this.redraw();
  }

  draw() {
    const c = this.canvas;
    const cssW = c.clientWidth, cssH = c.clientHeight;
    if (!cssW || !cssH) return;
    const dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(cssW * dpr) || c.height !== Math.round(cssH * dpr)) {
      c.width = Math.round(cssW * dpr); c.height = Math.round(cssH * dpr);
    }
    const ctx = c.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const total = this.fs.total;
    const w = cssW - PAD_L - PAD_R, hh = cssH - PAD_T - PAD_B;

    // One value per column: the slowest frame in it.
    const cols = Math.max(1, Math.min(total, Math.floor(w)));
    const vals = new Float64Array(cols).fill(-1);
    let max = 0, sum = 0, count = 0, min = Infinity;
    for (let i = 0; i < total; i++) {
      const f = this.fs.frames[i];
      if (!f || f.status !== 'done' || f.render_time == null) continue;
      const t = f.render_time;
      const col = Math.floor((i * cols) / total);
      if (t > vals[col]) vals[col] = t;
      if (t > max) max = t;
      if (t < min) min = t;
      sum += t; count++;
    }
    const top = niceMax(max);
    const y = (t) => PAD_T + hh - (t / top) * hh;
    const fg = css('--muted', '#8a8a8a'), grid = css('--line', '#3a3a3a');
    const bar = css('--accent', '#4772b3'), mark = css('--hot', '#e87d0d');
    ctx.font = `${Math.round(11 * Math.max(1, cssH / 160))}px system-ui, sans-serif`;
    ctx.fillStyle = fg; ctx.strokeStyle = grid; ctx.lineWidth = 1;
    ctx.textBaseline = 'middle'; ctx.textAlign = 'right';
    for (const t of [0, top / 2, top]) {
      ctx.beginPath(); ctx.moveTo(PAD_L, Math.round(y(t)) + 0.5); ctx.lineTo(PAD_L + w, Math.round(y(t)) + 0.5); ctx.stroke();
      ctx.fillText(fmtDuration(t), PAD_L - 6, y(t));
    }
    ctx.textBaseline = 'top';
    ctx.textAlign = 'left';
    if (total) ctx.fillText(String(this.fs.numberAt(0)), PAD_L, PAD_T + hh + 4);
    ctx.textAlign = 'right';
    if (total > 1) ctx.fillText(String(this.fs.numberAt(total - 1)), PAD_L + w, PAD_T + hh + 4);

    const bw = w / cols;
    ctx.fillStyle = bar;
    for (let k = 0; k < cols; k++) {
      if (vals[k] < 0) continue;
      const yy = y(vals[k]);
      ctx.fillRect(PAD_L + k * bw, yy, Math.max(1, bw > 4 ? bw - 1 : bw), PAD_T + hh - yy);
    }
    if (count) {
      const avg = sum / count;
      ctx.strokeStyle = fg; ctx.setLineDash([4, 4]);
      ctx.beginPath(); ctx.moveTo(PAD_L, Math.round(y(avg)) + 0.5); ctx.lineTo(PAD_L + w, Math.round(y(avg)) + 0.5); ctx.stroke();
      ctx.setLineDash([]);
    }
    if (this.selected >= 0 && total) {
      const x = PAD_L + ((this.selected + 0.5) / total) * w;
      ctx.strokeStyle = mark; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(x, PAD_T); ctx.lineTo(x, PAD_T + hh); ctx.stroke();
    }
    this.el.dataset.bars = String(count);
    setText(this.summary, count
      ? `${count} frame${count === 1 ? '' : 's'} · average ${fmtDuration(sum / count)} (dashed) · fastest ${fmtDuration(min)} · slowest ${fmtDuration(max)} · total ${fmtDuration(sum)}`
      : 'No frame rendered yet.');
  }

  destroy() {
    this.ro.disconnect();
    this.fs.removeEventListener('change', this.redraw);
    this.fs.removeEventListener('frame', this.redraw);
    this.fs.removeEventListener('resize', this.redraw);
  }
}
