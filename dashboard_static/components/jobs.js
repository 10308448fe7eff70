// The jobs of a shot: frames, status, node, attempts, time; a row opens its log
// (GET /api/jobs/{id}, which carries the full log tail).

import { api } from '../api.js';
import { h, fill, setText, fmtDuration, fmtFrames, statusPill, rafThrottle, jobFraction } from '../util.js';

const FILTERS = ['all', 'running', 'failed', 'queued', 'done', 'cancelled'];
const SHOW = 100;   // rows drawn before "show all"

export class JobsPanel {
  constructor(shotId, { onPickFrame } = {}) {
    this.shotId = shotId;
    this.onPickFrame = onPickFrame;
    this.jobs = new Map();
    this.filter = 'all';
    this.showAll = false;
    this.open = new Set();       // job ids whose log is open
    this.logs = new Map();       // job id → element holding the log
    this.seg = h('div.seg', { role: 'tablist' });
    this.tbody = h('tbody');
    this.more = h('button.btn.small', { type: 'button', hidden: true, onclick: () => { this.showAll = true; this.render(); } });
    this.empty = h('p.empty', { hidden: true }, 'No jobs.');
    this.el = h('section.card.jobs', { 'aria-label': 'Jobs' },
      h('div.card-head', null, h('h2', null, 'Jobs'), this.seg),
      h('div.table-wrap', null, h('table.grid-table.jobs-table', null,
        h('thead', null, h('tr', null,
          h('th', null, 'Frames'), h('th', null, 'Status'), h('th', null, 'Node'),
          h('th.num', null, 'Attempts'), h('th.num', null, 'Time'), h('th.w-progress', null, 'Progress'),
          h('th', null, 'Job'), h('th', null, ''))),
        this.tbody)),
      this.empty, this.more);
    this.render = rafThrottle(() => this.draw());
  }

  async load() {
    try {
      const list = await api.jobs(this.shotId);
      this.jobs = new Map(list.map((j) => [j.id, j]));
    } catch (e) {
      setText(this.empty, `Could not load the jobs: ${e.message}`);
      this.empty.hidden = false;
      return;
    }
    this.render();
    for (const id of this.open) this.loadLog(id);
  }

  apply(job) {
    const old = this.jobs.get(job.id);
    this.jobs.set(job.id, old ? { ...old, ...job } : job);
    this.render();
    if (this.open.has(job.id) && old && old.status !== job.status) this.loadLog(job.id);
  }

  async loadLog(id) {
    const box = this.logs.get(id);
    if (!box) return;
    setText(box, 'Loading the log…');
    try {
      const j = await api.job(id);
      const parts = [];
      if (j.failure_reason) parts.push(h('div.failure', null, j.failure_reason));
      parts.push(h('pre.log', null, j.log_tail || (j.status === 'running' || j.status === 'queued' ? '(no log yet)' : '(the coordinator kept no log for this job)')));
      fill(box, parts);
      const pre = box.querySelector('pre');
      pre.scrollTop = pre.scrollHeight;
    } catch (e) {
      fill(box, h('div.failure', null, `Could not load the log: ${e.message}`));
    }
  }

  toggleLog(id) {
    if (this.open.has(id)) { this.open.delete(id); this.logs.delete(id); } else {
      this.open.add(id);
      this.logs.set(id, h('div.logbox'));
      this.loadLog(id);
    }
    this.draw();
  }

  draw() {
    const all = [...this.jobs.values()].sort((a, b) => (a.frames?.[0] ?? 0) - (b.frames?.[0] ?? 0));
    const counts = { all: all.length };
    for (const j of all) counts[j.status] = (counts[j.status] || 0) + 1;
    fill(this.seg, FILTERS.filter((f) => f === 'all' || counts[f]).map((f) => h('button.seg-btn', {
      type: 'button', class: f === this.filter ? 'active' : null,
      onclick: () => { this.filter = f; this.showAll = false; this.draw(); },
    }, f, h('span.badge', null, String(counts[f] || 0)))));
    const list = this.filter === 'all' ? all : all.filter((j) => j.status === this.filter);
    const shown = this.showAll ? list : list.slice(0, SHOW);
    const rows = [];
    for (const j of shown) {
      const frac = j.status === 'running' ? jobFraction(j) : null;
      const p = j.progress;
      // Running: time so far; ended: how long it took; queued (maybe requeued): nothing.
      const time = !j.started_at ? null : j.status === 'running' ? Date.now() / 1000 - j.started_at
        : j.finished_at && j.status !== 'queued' ? j.finished_at - j.started_at : null;
      const open = this.open.has(j.id);
      const first = j.frames && j.frames.length ? j.frames[0] : null;
      rows.push(h('tr', { class: `clickable${open ? ' open' : ''}`, dataset: { jobId: j.id, status: j.status }, onclick: (e) => {
        if (e.target.closest('a,button')) return;
        this.toggleLog(j.id);
      } },
      h('td.mono', null, first != null && this.onPickFrame
        ? h('a', { href: '#', onclick: (e) => { e.preventDefault(); this.onPickFrame(first); } }, fmtFrames(j.frames))
        : fmtFrames(j.frames)),
      h('td', null, statusPill(j.status)),
      h('td', null, j.node_name || (j.node_id ? String(j.node_id).slice(0, 8) : '—')),
      h('td.num', { title: `${j.failures || 0} failed` }, String(j.attempts ?? 0),
        j.failures ? h('span.bad', null, ` (${j.failures} failed)`) : null),
      h('td.num', null, time == null ? '—' : fmtDuration(time)),
      h('td.w-progress', null, frac == null ? null : h('div.progress', { title: p && p.samples ? `frame ${p.frame} · ${p.sample}/${p.samples} samples` : '' },
        h('i.done', { style: { width: `${(frac * 100).toFixed(1)}%` } }))),
      h('td.mono.muted', { title: j.id }, String(j.id).slice(0, 8)),
      h('td.actions', null, h('button.btn.small', { type: 'button', onclick: () => this.toggleLog(j.id) }, open ? 'Hide log' : 'Log'))));
      if (open) {
        rows.push(h('tr.logrow', null, h('td', { colspan: 8 }, this.logs.get(j.id))));
      }
    }
    fill(this.tbody, rows);
    this.empty.hidden = list.length > 0;
    this.more.hidden = this.showAll || list.length <= SHOW;
    setText(this.more, `Show all ${list.length} jobs`);
  }
}
