// Small DOM and formatting helpers shared by every view. No fetch here (see api.js).

/** h('div.a.b', {attr: v, onclick: fn}, child, 'text', [more]) → Element */
export function h(tag, attrs, ...kids) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.classList.add(...String(v).split(/\s+/).filter(Boolean));
      else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'text') el.textContent = v;
      else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'hidden') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, kids);
  return el;
}

export function append(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k == null || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}

/** Replace all children of el. */
export function fill(el, ...kids) {
  el.replaceChildren();
  return append(el, kids);
}

/** Set textContent only when it changed (keeps DOM churn low on live updates). */
export function setText(el, text) {
  const t = text == null ? '' : String(text);
  if (el.textContent !== t) el.textContent = t;
}

export function fmtDuration(sec) {
  if (sec == null || !isFinite(sec)) return '—';
  if (sec < 0) sec = 0;
  if (sec < 10) return `${sec.toFixed(1)} s`;
  if (sec < 60) return `${Math.round(sec)} s`;
  const m = Math.floor(sec / 60), s = Math.round(sec % 60);
  if (m < 60) return `${m} min ${String(s).padStart(2, '0')} s`;
  const hh = Math.floor(m / 60), mm = m % 60;
  if (hh < 48) return `${hh} h ${String(mm).padStart(2, '0')} min`;
  return `${Math.floor(hh / 24)} d ${hh % 24} h`;
}

export function fmtAgo(ts, now = Date.now() / 1000) {
  if (ts == null) return '—';
  const d = now - ts;
  if (d < 5) return 'just now';
  if (d < 60) return `${Math.round(d)} s ago`;
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  if (d < 86400) return `${Math.round(d / 3600)} h ago`;
  return `${Math.round(d / 86400)} d ago`;
}

export function fmtDate(ts) {
  if (ts == null) return '—';
  const d = new Date(ts * 1000);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return sameDay ? time : `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

export function fmtBytes(n) {
  if (n == null) return '—';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n < 10 && i ? n.toFixed(1) : Math.round(n)} ${u[i]}`;
}

export function pct(done, total) {
  return total > 0 ? Math.max(0, Math.min(100, (100 * done) / total)) : 0;
}

/** Frame lists as ranges: [1,2,3,5] → "1–3, 5"; [1,3,5,7] → "1–7 by 2". */
export function fmtFrames(list) {
  if (!list || !list.length) return '—';
  const out = [];
  let i = 0;
  while (i < list.length) {
    const step = list[i + 1] - list[i];
    let j = i;
    if (step > 0) while (j + 1 < list.length && list[j + 1] - list[j] === step) j++;
    const len = j - i + 1;
    if (len >= 3 || (len === 2 && step === 1)) {
      out.push(step === 1 ? `${list[i]}–${list[j]}` : `${list[i]}–${list[j]} by ${step}`);
      i = j + 1;
    } else {
      out.push(String(list[i]));
      i++;
    }
  }
  return out.join(', ');
}

/** Call fn at most once per animation frame. */
export function rafThrottle(fn) {
  let queued = false;
  return (...args) => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; fn(...args); });
  };
}

/** Call fn at most once per `ms`, and once more after the last call (trailing). */
export function throttle(fn, ms) {
  let last = 0, timer = null;
  return (...args) => {
    const wait = last + ms - Date.now();
    if (wait <= 0 && !timer) { last = Date.now(); fn(...args); return; }
    if (!timer) {
      timer = setTimeout(() => { timer = null; last = Date.now(); fn(...args); }, Math.max(0, wait));
    }
  };
}

/** Subscribe to events on target; returns one function that removes them all. */
export function listen(target, handlers) {
  for (const [type, fn] of Object.entries(handlers)) target.addEventListener(type, fn);
  return () => { for (const [type, fn] of Object.entries(handlers)) target.removeEventListener(type, fn); };
}

export function statusPill(status) {
  return h('span.pill', { dataset: { status: status || 'unknown' } }, status || 'unknown');
}

export function progressBar(done, total, rendering = 0) {
  const bar = h('div.progress', { role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 },
    h('i.done'), h('i.rendering'));
  updateProgress(bar, done, total, rendering);
  return bar;
}

export function updateProgress(bar, done, total, rendering = 0) {
  const d = pct(done, total), r = pct(rendering, total);
  bar.firstChild.style.width = `${d}%`;
  bar.lastChild.style.width = `${Math.min(r, 100 - d)}%`;
  bar.setAttribute('aria-valuenow', Math.round(d));
  bar.title = `${done ?? 0} of ${total ?? 0} frames done${rendering ? `, ${rendering} rendering` : ''}`;
}

/** Node.progress may be a fraction, a percentage or {frame, sample, samples}: return 0..1 or null. */
export function progressFraction(p) {
  if (p == null) return null;
  if (typeof p === 'number') return p > 1 ? p / 100 : p;
  if (typeof p === 'object' && p.samples) return Math.max(0, Math.min(1, (p.sample || 0) / p.samples));
  return null;
}

/** A job's overall progress 0..1 from {frame, sample, samples} and its frame list. */
export function jobFraction(job, progress = job && job.progress) {
  const f = progressFraction(progress);
  if (f == null) return null;
  const frames = job && job.frames;
  if (!frames || !frames.length || typeof progress !== 'object' || progress.frame == null) return f;
  const k = frames.indexOf(progress.frame);
  return k < 0 ? f : (k + f) / frames.length;
}

// Small inline icons (no icon font: glyphs like ⏮ are missing from many system fonts).
const ICONS = {
  play: '<path d="M4 2.5v11l9-5.5z"/>',
  pause: '<path d="M4 2.5h3v11H4zM9 2.5h3v11H9z"/>',
  prev: '<path d="M3 2.5h2v11H3zM13 2.5v11L6 8z"/>',
  next: '<path d="M11 2.5h2v11h-2zM3 2.5v11L10 8z"/>',
  full: '<path d="M2 2h5v2H4v3H2zM9 2h5v5h-2V4H9zM2 9h2v3h3v2H2zM12 9h2v5H9v-2h3z"/>',
};

export function icon(name) {
  const span = document.createElement('span');
  span.className = 'icon';
  span.innerHTML = `<svg viewBox="0 0 16 16" width="1em" height="1em" fill="currentColor" aria-hidden="true">${ICONS[name]}</svg>`;
  return span;
}
