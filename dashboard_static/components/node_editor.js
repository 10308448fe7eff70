// A node's pool and availability, edited by an admin (PATCH /api/nodes/{id}): its tags
// (or back to the node's own --tags) and when it may render — always, never, or weekly
// windows in the node's own local time, and what it does with its job when a window
// ends. The coordinator checks everything; a refusal names the field, and the message
// is shown next to that field.

import { api, auth } from '../api.js';
import { askToken, toast } from '../ui.js';
import { h, fill } from '../util.js';

export const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const DAY_LABELS = { mon: 'Mon', tue: 'Tue', wed: 'Wed', thu: 'Thu', fri: 'Fri', sat: 'Sat', sun: 'Sun' };
const FIELD_NAMES = { days: 'Days', start: 'From', end: 'To' };
const NEW_WINDOW = { days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '19:00', end: '08:00' };

/** "UTC+01:00" for an offset in seconds east of UTC. */
export function fmtOffset(sec) {
  const s = Number(sec) || 0;
  const m = Math.round(Math.abs(s) / 60);
  return `UTC${s < 0 ? '−' : '+'}${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

/** The node's local clock now: "Sun 14:05". */
export function nodeClock(utcOffset, now = Date.now()) {
  const d = new Date(now + (Number(utcOffset) || 0) * 1000);
  const day = DAY_LABELS[DAYS[(d.getUTCDay() + 6) % 7]];
  return `${day} ${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
}

/** Days as a short phrase: Mon–Fri, Sat, Sun, Mon, Wed. */
function fmtDays(days) {
  const idx = DAYS.filter((d) => days.includes(d)).map((d) => DAYS.indexOf(d));
  if (idx.length === 7) return 'daily';
  const out = [];
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && idx[j + 1] === idx[j] + 1) j++;
    const a = DAY_LABELS[DAYS[idx[i]]], b = DAY_LABELS[DAYS[idx[j]]];
    out.push(j - i >= 2 ? `${a}–${b}` : j > i ? `${a}, ${b}` : a);
    i = j + 1;
  }
  return out.join(', ');
}

/** A schedule in a few words: "always", "never", "Mon–Fri 19:00–08:00". */
export function fmtSchedule(schedule) {
  const s = schedule || { mode: 'always' };
  if (s.mode !== 'weekly') return s.mode || 'always';
  return (s.windows || []).map((w) => `${fmtDays(w.days || [])} ${w.start}–${w.end}`).join('; ');
}

/** Tags typed as "a, b c": the list the API takes. */
function parseTags(text) {
  return text.split(/[\s,]+/).map((t) => t.trim()).filter(Boolean);
}

export class NodeEditor {
  /** onSaved(node): the coordinator's answer (the node as it is now). */
  constructor(node, { onSaved, onClose }) {
    this.node = node;
    this.onSaved = onSaved;
    this.onClose = onClose;
    this.errors = new Map();   // field → element showing its error
    this.windows = [];          // [{days, start, end}] as edited
    this.dirty = false;         // the admin changed something not saved yet

    this.tags = h('input.tags-input', {
      type: 'text', name: 'tags', autocomplete: 'off', spellcheck: 'false',
      'aria-label': 'Tags', placeholder: 'e.g. gpu, big-ram',
    });
    this.ownTags = h('span.muted.own-tags');
    this.resetTags = h('button.btn.small', {
      type: 'button', title: 'Forget the admin’s tags: the node’s own --tags count again',
      onclick: () => this.save({ tags: null }, 'Tags reset'),
    }, 'Reset to the node’s own');
    this.mode = h('div.seg.mode', { role: 'radiogroup', 'aria-label': 'Availability' });
    this.modeValue = 'always';
    this.windowList = h('div.windows');
    this.addWindow = h('button.btn.small', {
      type: 'button', onclick: () => {
        this.dirty = true;
        this.windows.push({ ...NEW_WINDOW, days: [...NEW_WINDOW.days] });
        this.drawWindows();
      },
    }, '+ Window');
    this.onSleep = h('select', { name: 'on_sleep', 'aria-label': 'When its window ends' },
      h('option', { value: 'finish' }, 'finish its current job'),
      h('option', { value: 'handback' }, 'hand its job back at once'));
    this.clock = h('span.muted.node-clock');
    this.general = h('div.field-error', { role: 'alert', hidden: true, dataset: { field: '' } });
    this.saveBtn = h('button.btn.primary', { type: 'submit' }, 'Save');

    const tagsErr = this.errorEl('tags');
    const modeErr = this.errorEl('schedule.mode');
    const windowsErr = this.errorEl('schedule.windows');
    const onSleepErr = this.errorEl('schedule.on_sleep');
    this.weekly = h('div.weekly', null, this.windowList, windowsErr, this.addWindow);
    this.el = h('form.node-editor', {
      'aria-label': `Edit ${node.name}`, dataset: { nodeId: node.id }, novalidate: true,
      onsubmit: (e) => { e.preventDefault(); this.submit(); },
      oninput: () => { this.dirty = true; },
      onchange: () => { this.dirty = true; },
    },
      h('div.field', null, h('span.label', null, 'Tags'),
        h('div.field-body', null,
          h('div.row', null, this.tags, this.resetTags), this.ownTags, tagsErr)),
      h('div.field', null, h('span.label', null, 'Renders'),
        h('div.field-body', null, h('div.row', null, this.mode, this.clock), modeErr, this.weekly)),
      h('div.field', null, h('span.label', null, 'When a window ends'),
        h('div.field-body', null, this.onSleep, onSleepErr)),
      this.general,
      h('div.row.form-actions', null, this.saveBtn,
        h('button.btn', { type: 'button', onclick: () => this.onClose() }, 'Close')));
    this.load(node);
  }

  errorEl(field) {
    const el = h('div.field-error', { role: 'alert', hidden: true, dataset: { field } });
    this.errors.set(field, el);
    return el;
  }

  /** The node changed (an event): show it, unless the admin is in the middle of editing. */
  follow(node) {
    const key = (n) => JSON.stringify([n.tags, n.own_tags, n.tags_edited, n.schedule, n.utc_offset]);
    if (key(node) === key(this.node)) { this.node = node; return; }
    if (!this.dirty) this.load(node);
  }

  /** Show the form as the node is now (after opening, or after a save). */
  load(node) {
    this.node = node;
    this.dirty = false;
    this.tags.value = (node.tags || []).join(', ');
    const own = node.own_tags || [];
    this.ownTags.textContent = node.tags_edited
      ? `Set by an admin. The node’s own: ${own.length ? own.join(', ') : 'none'}`
      : 'The node’s own (--tags). Edited tags are kept when it reconnects.';
    this.resetTags.hidden = !node.tags_edited;
    const s = node.schedule || { mode: 'always', windows: [], on_sleep: 'finish' };
    this.windows = (s.windows || []).map((w) => ({ days: [...w.days], start: w.start, end: w.end }));
    this.onSleep.value = s.on_sleep || 'finish';
    this.setMode(s.mode || 'always', { user: false });
    this.dirty = false;
    this.tick();
    this.clearErrors();
  }

  tick() {
    this.clock.textContent = `times are the node’s: ${fmtOffset(this.node.utc_offset)}, now ${nodeClock(this.node.utc_offset)}`;
  }

  setMode(mode, { user = true } = {}) {
    if (user) this.dirty = true;
    this.modeValue = mode;
    if (mode === 'weekly' && !this.windows.length) this.windows.push({ ...NEW_WINDOW, days: [...NEW_WINDOW.days] });
    fill(this.mode, ['always', 'never', 'weekly'].map((m) => h('button.seg-btn', {
      type: 'button', role: 'radio', class: m === mode ? 'active' : null,
      'aria-checked': m === mode ? 'true' : 'false', dataset: { mode: m },
      onclick: () => this.setMode(m),
    }, { always: 'Always', never: 'Never', weekly: 'Weekly schedule' }[m])));
    this.weekly.hidden = mode !== 'weekly';
    this.drawWindows();
  }

  drawWindows() {
    for (const key of [...this.errors.keys()]) if (key.startsWith('schedule.windows[')) this.errors.delete(key);
    fill(this.windowList, this.windows.map((w, i) => {
      const base = `schedule.windows[${i}]`;
      const days = h('div.days', { role: 'group', 'aria-label': 'Days' }, DAYS.map((d) => h('label.day', null,
        h('input', {
          type: 'checkbox', value: d, checked: w.days.includes(d),
          onchange: (e) => {
            w.days = e.target.checked ? DAYS.filter((x) => x === d || w.days.includes(x)) : w.days.filter((x) => x !== d);
          },
        }), DAY_LABELS[d])));
      const time = (key, label) => h('input', {
        type: 'time', name: `${base}.${key}`, value: w[key], 'aria-label': label, step: 60,
        oninput: (e) => { w[key] = e.target.value; },
      });
      return h('div.window', { dataset: { index: i } },
        h('div.row', null, days,
          h('span.times', null, time('start', 'From'), '–', time('end', 'To')),
          h('button.btn.ghost.small', {
            type: 'button', title: 'Remove this window', 'aria-label': 'Remove this window',
            onclick: () => { this.dirty = true; this.windows.splice(i, 1); this.drawWindows(); },
          }, '×')),
        this.errorEl(`${base}.days`), this.errorEl(`${base}.start`), this.errorEl(`${base}.end`),
        this.errorEl(base));
    }));
    if (!this.windows.length) {
      this.windowList.append(h('p.muted.small-note', null, 'No window: the node would never render.'));
    }
  }

  /** What the form asks for. Tags are sent only when changed, so that merely saving
   * a schedule does not turn the node's own tags into an admin's. */
  changes() {
    const out = {
      schedule: {
        mode: this.modeValue,
        windows: this.modeValue === 'weekly' ? this.windows.map((w) => ({ days: w.days, start: w.start, end: w.end })) : [],
        on_sleep: this.onSleep.value,
      },
    };
    const typed = parseTags(this.tags.value);
    if (typed.join('\u0000') !== (this.node.tags || []).join('\u0000')) out.tags = typed;
    return out;
  }

  clearErrors() {
    for (const el of [...this.errors.values(), this.general]) { el.hidden = true; el.textContent = ''; }
    for (const el of this.el.querySelectorAll('.invalid')) el.classList.remove('invalid');
  }

  /** Put the coordinator's message next to the field it names (or the closest one shown). */
  showError(field, message) {
    let key = field || '';
    while (key && !this.errors.has(key)) {
      const cut = Math.max(key.lastIndexOf('.'), key.lastIndexOf('['));
      key = cut > 0 ? key.slice(0, cut) : '';
    }
    const el = key ? this.errors.get(key) : this.general;
    // "schedule.windows[0].start: must be …" reads "From: must be …" next to the window.
    const text = field && message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message;
    const part = FIELD_NAMES[(field || '').split('.').pop()];
    el.textContent = part ? `${part}: ${text}` : text;
    el.title = message;
    el.hidden = false;
    const input = field && this.el.querySelector(`[name="${CSS.escape(field)}"]`);
    if (input) { input.classList.add('invalid'); input.focus(); }
    else if (el.parentElement && el.parentElement.classList.contains('window')) el.parentElement.classList.add('invalid');
  }

  submit() {
    return this.save(this.changes(), 'Saved');
  }

  async save(changes, done) {
    this.clearErrors();
    if (!auth.token) await askToken();
    this.saveBtn.disabled = true;
    try {
      const node = await api.editNode(this.node.id, changes);
      toast(`${node.name}: ${done.toLowerCase()}`, 'ok');
      this.load(node);
      this.onSaved(node);
    } catch (e) {
      if (e.status === 400) {
        this.showError(e.field, e.message);
      } else {
        const refused = e.status === 401 || e.status === 403;
        this.showError(null, e.message);
        toast(`Edit ${this.node.name} ${refused ? 'refused' : 'failed'}`, 'error', {
          detail: e.message, action: refused ? { label: 'Enter token', run: () => askToken() } : null,
        });
      }
    } finally {
      this.saveBtn.disabled = false;
    }
  }
}
