// Home: the last rendered frame, large; the farm at a glance; the active shots.

import { store } from '../store.js';
import { fileUrl } from '../api.js';
import { waitingText } from '../components/shot_pool.js';
import {
  h, fill, setText, listen, fmtDuration, fmtAgo, progressBar, updateProgress,
  statusPill, rafThrottle,
} from '../util.js';

export const name = 'home';

const ACTIVE = ['active', 'queued', 'paused'];
const STRIP_MAX = 12;
const RECENT_MAX = 5;   // rows in the shots panel when few are active

export function mount(root) {
  const img = h('img.hero-img', { alt: 'Last rendered frame', decoding: 'async' });
  const empty = h('div.hero-empty', null, 'No frame rendered yet. Submit a shot from Blender and watch it land here.');
  const stage = h('a.hero-stage', { href: '#/shots' }, img, empty);
  const cap = {
    shot: h('a.hero-shot'), frame: h('span.hero-frame'), node: h('span'), time: h('span'), ago: h('span.muted'),
  };
  const caption = h('div.hero-caption', null,
    cap.shot, cap.frame,
    h('span.kv', null, h('span.k', null, 'node'), cap.node),
    h('span.kv', null, h('span.k', null, 'render'), cap.time),
    cap.ago);
  const strip = h('div.strip', { hidden: true });
  const hero = h('section.card.hero', { 'aria-label': 'Last rendered frame' },
    h('h2', null, 'Last frame'), stage, caption, strip);

  const stats = {};
  const stat = (key, label) => h('div.stat', { dataset: { stat: key } },
    stats[key] = h('span.n', null, '—'), h('span.l', null, label));
  const farm = h('section.card.farm', { 'aria-label': 'Farm' },
    h('h2', null, h('a', { href: '#/nodes' }, 'Farm')),
    h('div.stats', null,
      stat('rendering', 'rendering'), stat('idle', 'idle'), stat('offline', 'offline'),
      stat('asleep', 'asleep'), stat('disabled', 'disabled'), stat('frames_queued', 'frames queued'), stat('shots_active', 'active shots')));

  const list = h('div.shotlist');
  const shots = h('section.card.active-shots', { 'aria-label': 'Active shots' },
    h('h2', null, h('a', { href: '#/shots' }, 'Active shots')), list);

  root.append(h('div.home', null, hero, h('div.home-side', null, farm, shots)));

  // --- last frame -----------------------------------------------------------
  let shown = null;
  let want = null;
  let loading = false;
  function showFrame(f) {
    if (!f) {
      want = null;
      img.hidden = true; empty.hidden = false; caption.hidden = true;
      hero.dataset.frame = '';
      return;
    }
    want = f;
    const url = fileUrl(f.preview_url || f.thumbnail_url || f.image_url);
    const apply = () => {
      if (want !== f) return;  // a newer frame arrived meanwhile
      shown = f;
      if (img.getAttribute('src') !== url) img.src = url;
      img.hidden = false; empty.hidden = true; caption.hidden = false;
      stage.href = `#/shots/${encodeURIComponent(f.shot_id)}/${f.number}`;
      hero.dataset.shotId = f.shot_id;
      hero.dataset.frame = String(f.number);
      const shotName = f.shot_name || (store.shots.get(f.shot_id) || {}).name || f.shot_id;
      setText(cap.shot, shotName);
      cap.shot.href = `#/shots/${encodeURIComponent(f.shot_id)}`;
      setText(cap.frame, `frame ${f.number}`);
      setText(cap.node, f.node_name || f.node_id || '—');
      setText(cap.time, fmtDuration(f.render_time));
      setText(cap.ago, fmtAgo(f.rendered_at));
      cap.ago.title = f.rendered_at ? new Date(f.rendered_at * 1000).toLocaleString() : '';
    };
    if (!url) { apply(); return; }
    // Decode off-screen first so the big image swaps without a blank flash. One image
    // loads at a time: when frames land faster than that, only the newest is shown.
    if (loading) return;
    loading = true;
    const pre = new Image();
    pre.src = url;
    const done = () => {
      loading = false;
      apply();
      if (want !== f) showFrame(want);
    };
    pre.decode().then(done, done);
  }

  function pushStrip(f) {
    if (!f.thumbnail_url) return;
    const href = `#/shots/${encodeURIComponent(f.shot_id)}/${f.number}`;
    const title = `${f.shot_name || f.shot_id} · frame ${f.number} · ${fmtDuration(f.render_time)}`;
    strip.prepend(h('a.strip-item', { href, title, dataset: { shotId: f.shot_id } },
      h('img', { src: fileUrl(f.thumbnail_url), alt: title, loading: 'lazy', decoding: 'async' }),
      h('span', null, String(f.number))));
    while (strip.children.length > STRIP_MAX) strip.lastChild.remove();
    strip.hidden = false;
  }

  // --- farm -----------------------------------------------------------------
  function renderFarm() {
    const c = store.nodeCounts();
    for (const k of ['rendering', 'idle', 'asleep', 'offline', 'disabled']) setText(stats[k], c[k] ?? 0);
    // Asleep nodes are counted only on farms that use schedules: six tiles otherwise.
    stats.asleep.parentElement.hidden = !c.asleep;
    const f = store.farm || {};
    setText(stats.frames_queued, f.frames_queued ?? '—');
    const active = [...store.shots.values()].filter((s) => s.status === 'active').length;
    setText(stats.shots_active, store.loaded ? active : (f.shots_active ?? '—'));
    stats.rendering.parentElement.classList.toggle('hot', (c.rendering || 0) > 0);
  }

  // --- active shots ---------------------------------------------------------
  const rows = new Map();
  function shotRow(s) {
    const bar = progressBar(0, 0);
    const r = {
      el: h('a.shotrow', { href: `#/shots/${encodeURIComponent(s.id)}`, dataset: { shotId: s.id } },
        h('span.name'), h('span.st'), bar, h('span.count.num'), h('span.eta.muted')),
      bar,
    };
    return r;
  }
  function updateRow(r, s) {
    const [nameEl, stEl, , countEl, etaEl] = r.el.children;
    setText(nameEl, s.name);
    if (stEl.dataset.status !== s.status) { fill(stEl, statusPill(s.status)); stEl.dataset.status = s.status; }
    updateProgress(r.bar, s.frames_done, s.frames_total, s.frames_rendering);
    setText(countEl, `${s.frames_done ?? 0}/${s.frames_total ?? 0}`);
    let note = '';
    if (waitingText(s)) note = waitingText(s);
    else if (s.status === 'active' && s.eta_seconds != null) note = `ETA ${fmtDuration(s.eta_seconds)}`;
    else if (s.finished_at) note = `ended ${fmtAgo(s.finished_at)}`;
    setText(etaEl, note);
    etaEl.classList.toggle('waiting', note.startsWith('waiting'));
    etaEl.title = note;
    r.el.classList.toggle('dim', !ACTIVE.includes(s.status));
  }

  const renderShots = rafThrottle(() => {
    const order = { active: 0, paused: 1, queued: 2 };
    const all = [...store.shots.values()];
    const active = all.filter((s) => ACTIVE.includes(s.status))
      .sort((a, b) => (order[a.status] - order[b.status]) || (b.priority - a.priority)
        || (a.created_at - b.created_at));
    // With little going on, the shots that just ended keep the panel useful.
    const recent = active.length >= RECENT_MAX ? [] : all.filter((s) => !ACTIVE.includes(s.status))
      .sort((a, b) => (b.finished_at ?? b.created_at ?? 0) - (a.finished_at ?? a.created_at ?? 0))
      .slice(0, RECENT_MAX - active.length);
    const keep = new Set();
    const rowEls = (shots_) => shots_.map((s) => {
      let r = rows.get(s.id);
      if (!r) { r = shotRow(s); rows.set(s.id, r); }
      keep.add(s.id);
      updateRow(r, s);
      return r.el;
    });
    const els = rowEls(active);
    if (!active.length) {
      els.push(h('p.empty', null, store.loaded ? 'No active shots. The farm is waiting for work.' : 'Loading…'));
    }
    if (recent.length) els.push(h('h3.sub-head', null, 'Recently ended'), ...rowEls(recent));
    for (const id of [...rows.keys()]) if (!keep.has(id)) rows.delete(id);
    // Rebuild only when the rows changed so hover states survive live updates.
    const same = els.length === list.children.length
      && els.every((e, i) => list.children[i] === e || (e.tagName !== 'A' && list.children[i].tagName === e.tagName
        && list.children[i].textContent === e.textContent));
    if (!same) fill(list, els);
  });

  function renderAll() {
    showFrame(store.latest);
    renderFarm();
    renderShots();
  }

  const off = listen(store, {
    reload: renderAll,
    frame: (e) => { showFrame(e.detail); pushStrip(e.detail); },
    shot: (e) => {
      renderShots(); renderFarm();
      if (e.detail.status === 'deleted') {
        for (const el of strip.querySelectorAll(`[data-shot-id="${e.detail.id}"]`)) el.remove();
        strip.hidden = !strip.children.length;
      }
    },
    latest: () => showFrame(store.latest),
    node: renderFarm,
    farm: renderFarm,
    tick: () => { if (shown) setText(cap.ago, fmtAgo(shown.rendered_at)); renderShots(); },
  });
  renderAll();
  return off;
}
