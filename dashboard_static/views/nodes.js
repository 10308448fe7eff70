// Nodes: who renders — status (asleep outside its availability window), current job
// and progress, its devices and Blender versions, its tags (marked when an admin edited
// them) and availability, last seen; enable or disable a node, edit its tags and
// schedule (components/node_editor.js).

import { store } from '../store.js';
import { api } from '../api.js';
import { act } from '../ui.js';
import { NodeEditor, fmtSchedule } from '../components/node_editor.js';
import {
  h, fill, setText, listen, fmtAgo, statusPill, rafThrottle, jobFraction,
} from '../util.js';

export const name = 'nodes';

const COLUMNS = 10;

/** "AMD Ryzen 9 ×16" (its name and CPU count), "NVIDIA RTX 4090 (OPTIX)". */
function deviceLabel(d, cpuCount) {
  if (d.type === 'CPU') return `${d.name || 'CPU'}${cpuCount ? ` ×${cpuCount}` : ''}`;
  return `${d.name || d.id} (${d.type})`;
}

export function mount(root) {
  const tbody = h('tbody');
  const count = h('span.muted');
  const table = h('table.grid-table.nodes-table', null,
    h('thead', null, h('tr', null,
      h('th', null, 'Node'), h('th', null, 'Status'), h('th', null, 'Current job'),
      h('th.w-progress', null, 'Progress'), h('th', null, 'Devices'), h('th', null, 'Blender'),
      h('th', null, 'Tags'), h('th', null, 'Availability'), h('th', null, 'Last seen'), h('th', null, ''))),
    tbody);
  const empty = h('p.empty', { hidden: true });
  root.append(h('section.card', { 'aria-label': 'Nodes' },
    h('div.card-head', null, h('h2', null, 'Nodes'), h('span.spacer'), count),
    h('div.table-wrap', null, table), empty));

  const jobs = new Map();  // job id → latest Job from events (frame/sample progress)
  const rows = new Map();

  function makeRow(n) {
    const toggle = h('button.btn.small.admin-only', { type: 'button' });
    toggle.addEventListener('click', async () => {
      const node = store.nodes.get(n.id) || n;
      const enable = node.enabled === false;
      toggle.disabled = true;
      const res = await act(`${enable ? 'Enable' : 'Disable'} ${node.name}`,
        () => api.setNodeEnabled(node.id, enable),
        { success: `${node.name} ${enable ? 'enabled' : 'disabled'}` });
      toggle.disabled = false;
      if (res && res.id) store.applyNode(res);
    });
    const editBtn = h('button.btn.small', { type: 'button', 'aria-expanded': 'false' }, 'Edit');
    editBtn.addEventListener('click', () => toggleEditor(n.id));
    const fillEl = h('i.done');
    const cells = {
      name: h('td.name', null, h('strong'), h('div.sub.muted')),
      status: h('td'),
      job: h('td.job'),
      progress: h('td.w-progress', null, h('div.progress', null, fillEl), h('div.sub.muted')),
      devices: h('td.devices'),
      blender: h('td.blenders'),
      tags: h('td.tags'),
      schedule: h('td.schedule'),
      seen: h('td'),
      actions: h('td.actions', null, editBtn, ' ', toggle),
    };
    return {
      tr: h('tr', { dataset: { nodeId: n.id } }, Object.values(cells)), cells, toggle, fillEl, editBtn,
      editor: null, editRow: null,
    };
  }

  function updateRow(r, n) {
    const c = r.cells;
    setText(c.name.firstChild, n.name || n.id);
    setText(c.name.lastChild, [n.hostname !== n.name ? n.hostname : null, n.platform].filter(Boolean).join(' · '));
    const statusKey = `${n.status}|${n.enabled}`;
    if (c.status.dataset.key !== statusKey) {
      fill(c.status, statusPill(n.status), n.enabled === false ? h('span.pill', { dataset: { status: 'disabled' } }, 'disabled') : null);
      c.status.dataset.key = statusKey;
    }
    const job = n.current_job_id ? jobs.get(n.current_job_id) : null;
    if (n.current_shot_id || n.current_job_id) {
      const shot = store.shots.get(n.current_shot_id);
      const key = `${n.current_shot_id}|${n.current_job_id}|${shot ? shot.name : ''}`;
      if (c.job.dataset.key !== key) {
        fill(c.job,
          n.current_shot_id ? h('a', { href: `#/shots/${encodeURIComponent(n.current_shot_id)}` }, shot ? shot.name : n.current_shot_id) : null,
          n.current_job_id ? h('span.muted.mono', null, ` job ${String(n.current_job_id).slice(0, 8)}`) : null);
        c.job.dataset.key = key;
      }
    } else if (c.job.dataset.key !== '') {
      fill(c.job, h('span.muted', null, '—'));
      c.job.dataset.key = '';
    }
    const p = job && job.progress ? job.progress : n.progress;
    const frac = n.status === 'rendering' ? jobFraction(job, p) : null;
    r.fillEl.style.width = frac == null ? '0%' : `${(frac * 100).toFixed(1)}%`;
    r.fillEl.parentElement.hidden = frac == null;
    let detail = '';
    if (n.status === 'rendering' && p && typeof p === 'object') {
      detail = [p.frame != null ? `frame ${p.frame}` : null,
        p.samples ? `${p.sample ?? 0}/${p.samples} samples` : null].filter(Boolean).join(' · ');
    } else if (frac != null) detail = `${Math.round(frac * 100)}%`;
    setText(c.progress.lastChild, detail);
    const devices = n.devices && n.devices.length ? n.devices : [{ type: 'CPU', name: 'CPU', id: 'CPU' }];
    const devKey = JSON.stringify([devices, n.cpu_count]);
    if (c.devices.dataset.key !== devKey) {
      fill(c.devices, devices.map((d) => h('span.device', { dataset: { type: d.type }, title: d.id || '' }, deviceLabel(d, n.cpu_count))));
      c.devices.dataset.key = devKey;
    }
    const blenders = n.blenders && n.blenders.length ? n.blenders : [n.blender_version].filter(Boolean);
    setText(c.blender, blenders.length ? blenders.join(', ') : '—');
    const tagKey = JSON.stringify([n.tags || [], !!n.tags_edited, n.own_tags || []]);
    if (c.tags.dataset.key !== tagKey) {
      fill(c.tags, (n.tags || []).map((t) => h('span.tag', null, t)),
        !(n.tags || []).length ? h('span.muted', null, '—') : null,
        n.tags_edited ? h('span.edited', {
          title: `Set by an admin; the node’s own: ${(n.own_tags || []).join(', ') || 'none'}`,
        }, 'edited') : null);
      c.tags.dataset.key = tagKey;
    }
    const sched = n.schedule || { mode: 'always' };
    setText(c.schedule, `${fmtSchedule(sched)}${sched.mode !== 'always' && sched.on_sleep === 'handback' ? ' · hands back' : ''}`);
    c.schedule.dataset.mode = sched.mode || 'always';
    // A connected node is seen now; an offline one when it was last heard of.
    const online = n.status !== 'offline';
    setText(c.seen, online ? 'now' : fmtAgo(n.last_seen));
    c.seen.title = online && n.connected_at
      ? `connected since ${new Date(n.connected_at * 1000).toLocaleString()}`
      : (n.last_seen ? new Date(n.last_seen * 1000).toLocaleString() : '');
    setText(r.toggle, n.enabled === false ? 'Enable' : 'Disable');
    r.toggle.classList.toggle('primary', n.enabled === false);
    r.tr.classList.toggle('dim', n.status === 'offline');
    if (r.editor) { r.editor.follow(n); r.editor.tick(); }
  }

  function toggleEditor(id) {
    const r = rows.get(id);
    if (!r) return;
    if (r.editor) { closeEditor(r); return; }
    const node = store.nodes.get(id);
    r.editor = new NodeEditor(node, {
      onSaved: (saved) => store.applyNode(saved),
      onClose: () => closeEditor(r),
    });
    r.editRow = h('tr.edit-row', { dataset: { editFor: id } }, h('td', { colspan: COLUMNS }, r.editor.el));
    r.editBtn.setAttribute('aria-expanded', 'true');
    r.editBtn.classList.add('primary');
    r.tr.after(r.editRow);
    r.editor.tags.focus();
  }

  function closeEditor(r) {
    r.editRow.remove();
    r.editor = null;
    r.editRow = null;
    r.editBtn.setAttribute('aria-expanded', 'false');
    r.editBtn.classList.remove('primary');
  }

  const order = { rendering: 0, idle: 1, asleep: 2, offline: 3 };
  const renderAll = rafThrottle(() => {
    const list = [...store.nodes.values()].sort((a, b) =>
      ((order[a.status] ?? 4) - (order[b.status] ?? 4)) || String(a.name).localeCompare(String(b.name)));
    const trs = list.map((n) => {
      let r = rows.get(n.id);
      if (!r) { r = makeRow(n); rows.set(n.id, r); }
      updateRow(r, n);
      return r.editRow ? [r.tr, r.editRow] : r.tr;
    }).flat();
    const same = trs.length === tbody.children.length && trs.every((t, i) => tbody.children[i] === t);
    if (!same) fill(tbody, trs);
    const c = store.nodeCounts();
    setText(count, `${c.rendering} rendering · ${c.idle} idle${c.asleep ? ` · ${c.asleep} asleep` : ''} · ${c.offline} offline${c.disabled ? ` · ${c.disabled} disabled` : ''}`);
    table.hidden = !list.length;
    empty.hidden = !!list.length;
    setText(empty, store.loaded
      ? 'No nodes yet. Start one with: brender-node --coordinator http://<this machine>:8080 --token <farm token>'
      : 'Loading…');
  });

  const off = listen(store, {
    reload: renderAll,
    node: renderAll,
    shot: renderAll,
    job: (e) => {
      const j = e.detail;
      // Progress events are partial: merge them into what the status event said.
      if (j.status === 'running') jobs.set(j.id, { ...(jobs.get(j.id) || {}), ...j }); else jobs.delete(j.id);
      renderAll();
    },
    tick: renderAll,
  });
  renderAll();
  return off;
}
