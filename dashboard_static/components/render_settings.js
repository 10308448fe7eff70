// How a shot renders: each setting as the artist asked (an override, or the file's
// own) beside what the node reported using, the chunking, and the files the shot
// was submitted without (with the data-block using each).

import { h, fill, setText } from '../util.js';

// [key, label]: the overrides a shot may ask for, then what only the node reports.
const SETTINGS = [
  ['scene', 'Scene'], ['camera', 'Camera'], ['view_layers', 'View layers'],
  ['output_format', 'Format'], ['color_depth', 'Colour depth'], ['color_mode', 'Colour'],
  ['exr_codec', 'EXR codec'], ['view_transform', 'View transform'], ['look', 'Look'],
  ['exposure', 'Exposure'], ['film_transparent', 'Transparent film'],
  ['resolution_x', 'Width'], ['resolution_y', 'Height'], ['resolution_percentage', 'Resolution %'],
  ['engine', 'Engine'], ['samples', 'Samples'], ['frame_step', 'Frame step'],
  ['blender_version', 'Blender'],
];
const REPORTED_ONLY = new Set(['engine', 'samples', 'frame_step', 'blender_version']);
const MISSING_SHOWN = 100;   // rows drawn before "show all"

function show(v) {
  if (v == null) return '—';
  if (Array.isArray(v)) return v.join(', ');
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

export class RenderSettings {
  constructor() {
    this.tbody = h('tbody');
    this.note = h('p.muted.settings-note');
    this.chunks = h('span.chunk-mode');
    this.settings = h('section.card.render-settings', { 'aria-label': 'Render settings' },
      h('div.card-head', null, h('h2', null, 'Render settings'), h('span.spacer'),
        h('span.kv', null, h('span.k', null, 'chunks'), this.chunks)),
      h('div.table-wrap', null, h('table.grid-table.settings-table', null,
        h('thead', null, h('tr', null, h('th', null, 'Setting'), h('th', null, 'Asked'),
          h('th', null, 'Used'))),
        this.tbody)),
      this.note);
    this.missingList = h('ul.missing-list');
    this.missingCount = h('span.badge');
    this.showAll = false;
    this.more = h('button.btn.small', { type: 'button', hidden: true, onclick: () => { this.showAll = true; this.drawMissing(); } });
    this.missing = h('section.card.missing-files', { 'aria-label': 'Missing files', hidden: true },
      h('div.card-head', null, h('h2', null, 'Submitted without these files'), this.missingCount),
      this.missingList, this.more);
    this.el = h('div.shot-settings', null, this.settings, this.missing);
    this.key = null;
  }

  update(shot) {
    const key = JSON.stringify([shot.render, shot.settings_used, shot.chunk_mode, shot.chunk_size]);
    if (key !== this.key) {
      this.key = key;
      this.draw(shot);
    }
    if (shot.missing && shot.missing !== this.missingShown) {
      this.missingShown = shot.missing;
      this.drawMissing();
    }
  }

  draw(shot) {
    const asked = shot.render || {};
    const used = shot.settings_used;
    fill(this.tbody, SETTINGS.map(([key, label]) => {
      const has = asked[key] != null;
      const usedValue = used ? used[key] : null;
      const differs = has && used && show(asked[key]) !== show(usedValue);
      return h('tr', { dataset: { key }, class: [has ? 'asked' : '', differs ? 'differs' : ''].join(' ') },
        h('td', null, label),
        h('td.asked', null, has ? show(asked[key]) : h('span.muted', null, REPORTED_ONLY.has(key) ? '—' : "file's own")),
        h('td.used', { title: differs ? 'The node used something else than was asked' : null }, used ? show(usedValue) : '—'));
    }));
    setText(this.note, used ? 'Used: as the node reported after opening the file and applying the overrides.'
      : 'Used: not reported yet (the first node to start the shot reports it).');
    setText(this.chunks, shot.chunk_mode === 'fixed' ? `${shot.chunk_size} frames a job (fixed)` : 'auto (sized by frame time)');
  }

  drawMissing() {
    const list = this.missingShown || [];
    this.missing.hidden = !list.length;
    setText(this.missingCount, String(list.length));
    const shown = this.showAll ? list : list.slice(0, MISSING_SHOWN);
    fill(this.missingList, shown.map((m) => h('li', null,
      h('span.mono.path', null, m.path),
      m.used_by ? h('span.muted.used-by', null, ` used by ${m.used_by}`) : null)));
    this.more.hidden = this.showAll || list.length <= MISSING_SHOWN;
    setText(this.more, `Show all ${list.length} files`);
  }
}
