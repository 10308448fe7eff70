// The shot's preview movie (an MP4 the coordinator makes with ffmpeg once the shot
// completes, or on request from the frames landed so far) and taking its frames home:
// one zip of all of them, a range, or one pass of their extra outputs.

import { api, fileUrl } from '../api.js';
import { act } from '../ui.js';
import { h, fill, setText, fmtAgo } from '../util.js';

const STATUS_TEXT = {
  queued: 'Waiting for its turn…',
  making: 'Making the movie…',
  ready: null,
  failed: null,
};

export class MoviePanel {
  constructor(shot) {
    this.shotId = shot.id;
    this.madeAt = null;
    this.video = h('video.movie-video', {
      controls: true, preload: 'metadata', playsinline: true, muted: true, hidden: true,
      'aria-label': 'Preview movie',
    });
    this.state = h('p.movie-state.muted');
    this.makeBtn = h('button.btn.small', {
      type: 'button', title: 'Make the movie now from the frames that have landed',
      onclick: () => this.make(),
    }, 'Make movie');
    this.openLink = h('a.btn.small.ghost', { target: '_blank', rel: 'noopener', hidden: true }, 'Open movie');
    this.downloads = this.downloadMenu();
    this.el = h('section.card.movie', { 'aria-label': 'Movie and downloads' },
      h('div.card-head', null, h('h2', null, 'Movie'), h('span.spacer'), this.openLink, this.makeBtn,
        this.downloads),
      this.video, this.state);
  }

  async make() {
    const res = await act('Make the movie', () => api.makeMovie(this.shotId),
      { success: 'The movie is being made' });
    if (res && res.movie) this.show(res.movie, null);
  }

  /** The shot changed (its summary, from the API or an event). */
  update(shot) {
    this.makeBtn.disabled = !shot.frames_done;
    this.show(shot.movie, shot);
  }

  show(movie, shot) {
    if (!movie) {
      setText(this.state, shot && shot.status === 'completed' ? 'No movie yet.'
        : 'The movie is made when the shot completes (or now, with Make movie).');
      return;
    }
    const text = STATUS_TEXT[movie.status];
    if (movie.status === 'failed') setText(this.state, `No movie: ${movie.error || 'it could not be made'}`);
    else if (text) setText(this.state, text);
    if (movie.status === 'ready' && movie.url) {
      setText(this.state, `${movie.frames} frames at ${movie.fps} fps, made ${fmtAgo(movie.made_at)}.`);
      if (movie.made_at !== this.madeAt) {
        this.madeAt = movie.made_at;
        const src = fileUrl(`${movie.url}?v=${encodeURIComponent(movie.made_at)}`);
        this.video.src = src;
        this.openLink.href = src;
      }
      this.video.hidden = false;
      this.openLink.hidden = false;
    }
  }

  // ---------------------------------------------------------------------------
  downloadMenu() {
    const all = h('a.btn.small', { download: '', href: this.zipUrl() }, 'All frames');
    const range = h('input.zip-range', {
      type: 'text', placeholder: '1-10,20', 'aria-label': 'Frames to download', size: 9,
    });
    const rangeLink = h('a.btn.small', { download: '', href: this.zipUrl() }, 'These frames');
    const pass = h('select.zip-pass', { 'aria-label': 'Pass to download' });
    const passLink = h('a.btn.small', { download: '' }, 'This pass');
    const passRow = h('div.zip-row', { hidden: true }, pass, passLink);
    const setRange = () => { rangeLink.href = this.zipUrl({ frames: range.value.trim() }); };
    const setPass = () => { passLink.href = this.zipUrl({ pass: pass.value }); };
    range.addEventListener('input', setRange);
    pass.addEventListener('change', setPass);
    const menu = h('details.zip-menu', null, h('summary.btn.small', null, 'Download frames'),
      h('div.zip-panel', null, h('div.zip-row', null, all), h('div.zip-row', null, range, rangeLink),
        passRow));
    menu.addEventListener('toggle', async () => {
      if (!menu.open) return;
      all.href = this.zipUrl();   // the token may have been entered since
      setRange();
      const names = await this.passNames().catch(() => []);
      fill(pass, ...names.map((n) => h('option', { value: n }, n)));
      passRow.hidden = !names.length;
      if (names.length) setPass();
    });
    return menu;
  }

  /** The passes of the shot's first done frame (every frame of a shot has the same). */
  async passNames() {
    const page = await api.frames(this.shotId, 0, 50);
    const first = (page.frames || []).find((f) => f.status === 'done' && f.outputs);
    if (!first) return [];
    const outputs = await api.frameOutputs(this.shotId, first.number);
    return outputs.filter((o) => o.kind === 'pass').map((o) => o.name);
  }

  zipUrl(params = {}) {
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
    const qs = query.toString();
    return fileUrl(`/api/shots/${encodeURIComponent(this.shotId)}/frames.zip${qs ? `?${qs}` : ''}`);
  }
}
