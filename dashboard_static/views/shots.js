// Shots: every shot in a table — status (and why it waits), progress, frames, ETA, priority, who and when.

import { store } from '../store.js';
import { waitingText } from '../components/shot_pool.js';
import {
  h, fill, setText, listen, fmtDuration, fmtAgo, progressBar, updateProgress,
  statusPill, rafThrottle,
} from '../util.js';

export const name = 'shots';

const FILTERS = {
  all: { label: 'All', test: () => true },
  active: { label: 'Active', test: (s) => ['active', 'queued', 'paused'].includes(s.status) },
  finished: { label: 'Finished', test: (s) => ['completed', 'failed', 'cancelled'].includes(s.status) },
};

let filter = 'all';  // kept while the page lives

export function mount(root) {
  const tabs = h('div.seg', { role: 'tablist' });
  const count = h('span.muted');
  const tbody = h('tbody');
  const table = h('table.grid-table.shots-table', null,
    h('thead', null, h('tr', null,
      h('th', null, 'Shot'), h('th', null, 'Status'), h('th.w-progress', null, 'Progress'),
      h('th.num', null, 'Frames'), h('th.num', null, 'ETA'), h('th.num', null, 'Per frame'),
      h('th.num', null, 'Priority'), h('th', null, 'Submitted'))),
    tbody);
  const empty = h('p.empty', { hidden: true });
  root.append(h('section.card', { 'aria-label': 'Shots' },
    h('div.card-head', null, h('h2', null, 'Shots'), tabs, h('span.spacer'), count),
    h('div.table-wrap', null, table), empty));

  function renderTabs() {
    fill(tabs, Object.entries(FILTERS).map(([key, f]) => {
      const n = [...store.shots.values()].filter(f.test).length;
      return h('button.seg-btn', {
        type: 'button', role: 'tab', class: key === filter ? 'active' : null,
        'aria-selected': key === filter ? 'true' : 'false',
        onclick: () => { filter = key; renderAll(); },
      }, f.label, h('span.badge', null, String(n)));
    }));
  }

  const rows = new Map();  // id → {tr, cells, bar}
  function makeRow(s) {
    const bar = progressBar(0, 0);
    const link = h('a.shot-link', { href: `#/shots/${encodeURIComponent(s.id)}` });
    const cells = {
      name: h('td.name', null, link, h('div.sub.muted'), h('div.sub.waiting', { hidden: true })),
      status: h('td'),
      progress: h('td.w-progress', null, bar),
      frames: h('td.num'),
      eta: h('td.num'),
      avg: h('td.num'),
      prio: h('td.num'),
      submitted: h('td', null, h('span.when'), h('span.by.muted')),
    };
    const tr = h('tr.clickable', { dataset: { shotId: s.id } }, Object.values(cells));
    tr.addEventListener('click', (e) => {
      if (e.target.closest('a')) return;
      location.hash = `#/shots/${encodeURIComponent(s.id)}`;
    });
    return { tr, cells, bar, link };
  }

  function updateRow(r, s) {
    const c = r.cells;
    setText(r.link, s.name);
    const fmt = s.output_format || (s.settings_used && s.settings_used.output_format);
    const waiting = waitingText(s);
    setText(c.name.lastChild, waiting);
    c.name.lastChild.hidden = !waiting;
    const needs = (s.requires_tags || []).length ? `needs ${s.requires_tags.join(', ')}` : null;
    setText(c.name.children[1], [fmt, s.frames || (s.frame_start != null ? `${s.frame_start}–${s.frame_end}` : null),
      needs, s.device && s.device !== 'any' ? s.device.toUpperCase() : null,
      s.max_nodes ? `≤ ${s.max_nodes} node${s.max_nodes === 1 ? '' : 's'}` : null]
      .filter(Boolean).join(' · '));
    if (c.status.dataset.status !== s.status) {
      fill(c.status, statusPill(s.status));
      c.status.dataset.status = s.status;
    }
    c.status.title = s.failure_reason || '';
    updateProgress(r.bar, s.frames_done, s.frames_total, s.frames_rendering);
    setText(c.frames, `${s.frames_done ?? 0} / ${s.frames_total ?? 0}`);
    setText(c.eta, s.status === 'active' || s.status === 'queued' ? fmtDuration(s.eta_seconds) : '—');
    setText(c.avg, fmtDuration(s.avg_frame_time));
    setText(c.prio, s.priority ?? '—');
    setText(c.submitted.firstChild, fmtAgo(s.created_at));
    c.submitted.firstChild.title = s.created_at ? new Date(s.created_at * 1000).toLocaleString() : '';
    setText(c.submitted.lastChild, s.submitted_by ? ` by ${s.submitted_by}` : '');
    r.tr.classList.toggle('dim', ['completed', 'cancelled'].includes(s.status));
  }

  const renderAll = rafThrottle(() => {
    renderTabs();
    const list = store.shotList().filter(FILTERS[filter].test);
    const seen = new Set();
    const trs = list.map((s) => {
      let r = rows.get(s.id);
      if (!r) { r = makeRow(s); rows.set(s.id, r); }
      updateRow(r, s);
      seen.add(s.id);
      return r.tr;
    });
    for (const id of [...rows.keys()]) if (!seen.has(id)) rows.delete(id);
    const same = trs.length === tbody.children.length && trs.every((t, i) => tbody.children[i] === t);
    if (!same) fill(tbody, trs);
    setText(count, `${store.shots.size} shot${store.shots.size === 1 ? '' : 's'}`);
    empty.hidden = list.length > 0;
    table.hidden = list.length === 0;
    setText(empty, !store.loaded ? 'Loading…'
      : store.shots.size ? 'No shots match.' : 'No shots yet. Submit one from Blender (Render → Brender).');
  });

  const off = listen(store, {
    reload: renderAll,
    shot: renderAll,
    tick: () => {
      for (const [id, r] of rows) {
        const s = store.shots.get(id);
        if (s) setText(r.cells.submitted.firstChild, fmtAgo(s.created_at));
      }
    },
  });
  renderAll();
  return off;
}
