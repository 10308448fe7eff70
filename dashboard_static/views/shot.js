// Shot: why it waits and what it asks of nodes, the frame grid, the viewer / animated preview, render time per frame, failed
// frames and why, the render settings asked for and used, missing files, the jobs and
// their logs, and the shot's actions.

import { store } from '../store.js';
import { api, auth } from '../api.js';
import { act, confirm, toast } from '../ui.js';
import { FrameSet, PAGE } from '../frameset.js';
import { FrameGrid } from '../components/grid.js';
import { Player } from '../components/player.js';
import { TimeChart } from '../components/chart.js';
import { JobsPanel } from '../components/jobs.js';
import { RenderSettings } from '../components/render_settings.js';
import { FailedFrames } from '../components/failed_frames.js';
import { ShotPool } from '../components/shot_pool.js';
import { FrameFilter } from '../components/frame_filter.js';
import { DeliveryPanel } from '../components/delivery.js';
import { MoviePanel } from '../components/movie.js';
import {
  h, fill, setText, listen, fmtDuration, fmtAgo, fmtDate, progressBar, updateProgress, statusPill,
} from '../util.js';

export const name = 'shot';

export function mount(root, { id, frame: wantFrame }) {
  let alive = true;
  let parts = null;   // built once the shot is known
  // The app's first load is not a reconnect: only later reloads refetch the shot.
  const baseReloads = store.loaded ? store.reloads : store.reloads + 1;
  const offs = [];
  root.append(h('p.empty', null, 'Loading the shot…'));

  // The first page of frames is fetched alongside the shot, not after it.
  let firstPage = api.frames(id, 0, PAGE);
  firstPage.catch(() => {});
  async function load() {
    let shot;
    try { shot = await api.shot(id); } catch (e) {
      if (!alive) return;
      fill(root, h('section.card', null, h('h2', null, e.status === 404 ? 'No such shot' : 'Could not load the shot'),
        h('p', null, e.message), h('p', null, h('a', { href: '#/shots' }, '← All shots'))));
      return;
    }
    if (!alive) return;
    if (!parts) build(shot); else refresh(shot);
  }

  // ---------------------------------------------------------------------------
  function build(shot) {
    store.shots.set(shot.id, { ...(store.shots.get(shot.id) || {}), ...shot });
    const fs = new FrameSet(shot);
    if (firstPage) { fs.prefetched = new Map([[0, firstPage]]); firstPage = null; }
    let follow = wantFrame == null;   // show each new frame as it lands until the user picks one

    const head = header(shot);
    const player = new Player(fs, shot, {
      onIndex: (i, { user }) => {
        grid.select(i, { scroll: user || !follow });
        chart.setSelected(i);
        if (user) setFollow(false);
        const n = fs.numberAt(i);
        // Only while the URL still names this shot: the user may have just navigated away
        // (the router hears of it a moment later), and that must not be undone.
        const here = `#/shots/${encodeURIComponent(shot.id)}`;
        if (alive && (location.hash === here || location.hash.startsWith(`${here}/`))) {
          history.replaceState(null, '', `${here}/${n}`);
        }
      },
    });
    const grid = new FrameGrid(fs, { onSelect: (i) => { player.pause(); player.show(i, { user: true }); } });
    const chart = new TimeChart(fs, { onPick: (i) => { player.pause(); player.show(i, { user: true }); } });
    const pickFrame = (n) => { const i = fs.indexOf(n); if (i >= 0) { player.pause(); player.show(i, { user: true }); } };
    const jobs = new JobsPanel(shot.id, { onPickFrame: pickFrame });
    const failed = new FailedFrames(fs, { onPickFrame: pickFrame });
    const settings = new RenderSettings();
    const filter = new FrameFilter(fs, grid);
    const delivery = new DeliveryPanel(shot.id);
    const movie = new MoviePanel(shot);
    const followBtn = h('button.btn.small', { type: 'button', title: 'Show each new frame as it lands', onclick: () => setFollow(!follow) }, 'Follow live');
    function setFollow(v) {
      follow = v;
      followBtn.classList.toggle('primary', v);
      followBtn.setAttribute('aria-pressed', v ? 'true' : 'false');
      if (v) { const j = fs.lastDone(); if (j >= 0) player.show(j); }
    }
    const gridCount = h('span.muted');
    const viewerCard = h('section.card.viewer', { 'aria-label': 'Viewer' },
      h('div.card-head', null, h('h2', null, 'Preview'), h('span.spacer'), followBtn), player.el);
    const gridCard = h('section.card.frames', { 'aria-label': 'Frames' },
      h('div.card-head', null, h('h2', null, 'Frames'), h('span.spacer'), filter.el, gridCount), grid.el,
      h('div.legend.muted', null, ...['done', 'rendering', 'queued', 'failed'].map((s) =>
        h('span', null, h('i.fdot', { dataset: { status: s } }), s))));
    const chartCard = h('section.card.chart-card', { 'aria-label': 'Render time per frame' },
      h('div.card-head', null, h('h2', null, 'Render time per frame')), chart.el);
    fill(root, h('div.shot', null, head.el, failed.el, h('div.shot-main', null, viewerCard, gridCard),
      movie.el, chartCard, delivery.el, settings.el, jobs.el));
    setFollow(follow);

    parts = { fs, player, grid, chart, jobs, head, settings, delivery, movie, shot };
    refresh(shot, { first: true });

    // First view: the asked frame, or the latest one that landed.
    fs.loadPage(0).then(async () => {
      if (!alive) return;
      if (wantFrame != null) {
        const guess = fs.indexOf(wantFrame);
        if (guess >= 0) await fs.loadPage(Math.floor(guess / PAGE)).catch(() => {});
        const i = fs.indexOf(wantFrame);
        if (i >= 0) player.show(i);
      }
      if (player.index < 0) { const j = fs.lastDone(); player.show(j >= 0 ? j : 0); }
      // The rest of the frames (for the chart and the player) wait until the browser is
      // idle, so they do not hold up the thumbnails in view.
      await new Promise((r) => (window.requestIdleCallback || ((f) => setTimeout(f, 200)))(r, { timeout: 500 }));
      await fs.loadAll();
      if (alive && follow) { const j = fs.lastDone(); if (j >= 0 && j !== player.index) player.show(j); }
    }).catch((e) => toast('Could not load the frames', 'error', { detail: e.message }));
    jobs.load();

    const updateCount = () => setText(gridCount, `${parts.shot.frames_done ?? 0} of ${fs.total} done`);
    offs.push(listen(store, {
      frame: (e) => {
        const f = e.detail;
        if (f.shot_id !== shot.id) return;
        fs.applyFrame(f);
        if (follow && !player.playing) { const i = fs.indexOf(f.number); if (i >= 0) player.show(i); }
      },
      job: (e) => {
        const j = e.detail;
        if (j.shot_id !== shot.id) return;
        fs.applyJob(j);
        jobs.apply(j);
      },
      shot: (e) => {
        const s = e.detail;
        if (s.id !== shot.id) return;
        if (s.status === 'deleted') { deleted(); return; }
        refresh({ ...parts.shot, ...s });
        updateCount();
      },
      reload: () => { if (store.reloads > baseReloads) load(); },
      tick: () => head.tick(parts.shot),
    }));
    updateCount();

    const onKey = (e) => {
      if (e.target.closest('input, textarea, select, dialog') || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === ' ') {
        if (e.target.closest('button, a')) return;  // space presses the focused button
        e.preventDefault(); player.toggle();
      }
      else if (e.key === 'ArrowLeft') { e.preventDefault(); player.step(-1); }
      else if (e.key === 'ArrowRight') { e.preventDefault(); player.step(1); }
    };
    window.addEventListener('keydown', onKey);
    offs.push(() => window.removeEventListener('keydown', onKey));
    offs.push(() => { player.destroy(); grid.destroy(); chart.destroy(); failed.destroy(); filter.destroy(); fs.destroy(); });
  }

  function refresh(shot, { first = false } = {}) {
    const failedBefore = parts.shot.frames_failed;
    parts.shot = { ...parts.shot, ...shot };
    parts.head.update(parts.shot);
    parts.settings.update(parts.shot);
    parts.delivery.update(parts.shot);
    parts.movie.update(parts.shot);
    // Frames fail (or are requeued) a job at a time, or a whole shot at once without
    // job events: read them again when the count moves.
    const failedMoved = !first && shot.frames_failed != null && shot.frames_failed !== failedBefore;
    if (!first && (shot.files || failedMoved)) {  // a full reload (after reconnecting)
      parts.fs.reset(shot);
      parts.fs.loadAll();
      parts.jobs.load();
    }
  }

  function deleted() {
    fill(root, h('section.card', null, h('h2', null, 'This shot was deleted'),
      h('p', null, h('a', { href: '#/shots' }, '← All shots'))));
    offs.splice(0).forEach((f) => f());
    parts = null;
  }

  // ---------------------------------------------------------------------------
  function header(shot) {
    const title = h('h1');
    const status = h('span');
    const bar = progressBar(0, 0);
    const facts = h('div.facts');
    const failure = h('div.failure', { hidden: true });
    const pool = new ShotPool();
    const prio = h('input.prio.owner-only', { type: 'number', step: 1, min: 0, max: 100, 'aria-label': 'Priority', title: 'Priority 0–100: higher renders first' });
    const btn = (label, title, onclick, cls = '') => h(`button.btn.owner-only${cls}`, { type: 'button', title, onclick }, label);
    const pauseBtn = btn('Pause', 'Queued jobs wait; running jobs finish', () => run('pause'));
    const resumeBtn = btn('Resume', 'Queue the shot again', () => run('resume'), '.primary');
    const requeueBtn = btn('Requeue failed', 'Failed jobs go back to the queue', () => run('requeue'));
    const cancelBtn = btn('Cancel', 'Stop the shot: running jobs are stopped on their nodes', async () => {
      const s = parts.shot;
      if (await confirm({ title: `Cancel ${s.name}?`, body: 'Running jobs are stopped on their nodes. Rendered frames are kept.', ok: 'Cancel shot' })) run('cancel');
    });
    const deleteBtn = btn('Delete', 'Delete the shot and its files', async () => {
      const s = parts.shot;
      const ok = await confirm({
        title: `Delete ${s.name}?`,
        body: `This deletes the shot, its ${s.frames_done ?? 0} rendered frames, their thumbnails and previews from the coordinator. It cannot be undone.`,
        ok: 'Delete',
      });
      if (!ok) return;
      const res = await act(`Delete ${s.name}`, () => api.deleteShot(s.id), { success: `${s.name} deleted` });
      if (res !== undefined) {
        store.applyShot({ id: s.id, status: 'deleted' });
        location.hash = '#/shots';
      }
    }, '.danger.admin-only');

    async function run(action) {
      const s = parts.shot;
      const label = { pause: 'Pause', resume: 'Resume', cancel: 'Cancel', requeue: 'Requeue' }[action];
      const res = await act(`${label} ${s.name}`, () => api.shotAction(s.id, action));
      if (res && res.id) store.applyShot(res);
    }
    async function setPriority() {
      const s = parts.shot;
      const v = Number(prio.value);
      if (!Number.isInteger(v) || v === s.priority) { prio.value = s.priority; return; }
      const res = await act(`Priority of ${s.name}`, () => api.setPriority(s.id, v), { success: `${s.name}: priority ${v}` });
      if (res && res.id) store.applyShot(res);
      else if (parts) prio.value = parts.shot.priority;
    }
    prio.addEventListener('change', setPriority);
    prio.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); prio.blur(); } });

    const el = h('section.card.shot-head', { dataset: { shotId: shot.id } },
      h('div.shot-title', null,
        h('a.crumb', { href: '#/shots' }, 'Shots /'), title, status, h('span.spacer'),
        h('label.prio-label.owner-only', null, 'Priority', prio),
        pauseBtn, resumeBtn, requeueBtn, cancelBtn, deleteBtn),
      h('div.shot-progress', null, bar, h('span.num.big')),
      pool.el, facts, failure);

    function update(s) {
      pool.update(s);
      setText(title, s.name);
      document.title = `${s.name} · Brender`;
      if (status.dataset.status !== s.status) { fill(status, statusPill(s.status)); status.dataset.status = s.status; }
      updateProgress(bar, s.frames_done, s.frames_total, s.frames_rendering);
      setText(el.querySelector('.big'), `${s.frames_done ?? 0} / ${s.frames_total ?? 0}`);
      if (document.activeElement !== prio) prio.value = s.priority ?? 0;
      el.classList.toggle('not-mine', !auth.mayChange(s));
      const finished = ['completed', 'cancelled'].includes(s.status);
      pauseBtn.hidden = !['active', 'queued'].includes(s.status);
      resumeBtn.hidden = s.status !== 'paused';
      cancelBtn.hidden = finished || s.status === 'failed';
      requeueBtn.hidden = !((s.jobs_failed || 0) > 0 || s.status === 'failed');
      failure.hidden = !s.failure_reason;
      setText(failure, s.failure_reason || '');
      tick(s);
    }
    function tick(s) {
      const kv = (k, v, title) => h('span.kv', { title }, h('span.k', null, k), h('span.v', null, v));
      fill(facts,
        kv('rendering', String(s.frames_rendering ?? 0)),
        kv('ETA', ['active', 'queued'].includes(s.status) ? fmtDuration(s.eta_seconds) : '—'),
        kv('per frame', fmtDuration(s.avg_frame_time), 'average measured render time'),
        kv('jobs', `${s.jobs_done ?? 0}/${s.jobs_total ?? 0}${s.jobs_failed ? `, ${s.jobs_failed} failed` : ''}`),
        kv('frames', `${s.frames || `${s.frame_start}–${s.frame_end}`}${s.frame_step > 1 ? ` by ${s.frame_step}` : ''}`),
        kv('format', format(s), 'asked for, or as the node reported the file’s own'),
        kv('chunks', s.chunk_mode === 'fixed' ? `${s.chunk_size} (fixed)` : 'auto'),
        s.frames_failed ? kv('failed', String(s.frames_failed)) : null,
        kv('fps', String(s.fps ?? '—')),
        kv('submitted', `${fmtAgo(s.created_at)}${s.submitted_by ? ` by ${s.submitted_by}` : ''}`,
          s.created_at ? new Date(s.created_at * 1000).toLocaleString() : ''),
        s.started_at ? kv('started', fmtDate(s.started_at)) : null,
        s.finished_at ? kv('finished', fmtDate(s.finished_at)) : null,
        s.finished_at && s.started_at ? kv('took', fmtDuration(s.finished_at - s.started_at)) : null);
    }
    return { el, update, tick };
  }

  function format(s) {
    const used = s.settings_used || {};
    const fmt = s.output_format || used.output_format || 'file’s own';
    const pct = s.resolution_percentage ?? used.resolution_percentage;
    return `${fmt}${pct && pct !== 100 ? ` @ ${pct}%` : ''}`;
  }

  load();
  return () => { alive = false; offs.splice(0).forEach((f) => f()); };
}
