// The dashboard's state, shared by the views. It never fetches: api.js feeds it from
// HTTP answers and Server-Sent Events, and every change goes out as a DOM event that
// views subscribe to while they are mounted:
//   reload   everything was (re)loaded (first load, or after a reconnect: `hello`)
//   shot     detail: Shot (status "deleted" when one was deleted)
//   node     detail: Node
//   frame    detail: Frame (+ shot_name), a frame just finished
//   job      detail: Job
//   farm     detail: the farm summary changed
//   latest   detail: Frame | null, the last frame was replaced (its shot was deleted)
//   conn     detail: "connecting" | "live" | "reconnecting" | "offline"
//   auth     detail: {reason}: reads need the token (coordinator runs with --lock-reads)

class Store extends EventTarget {
  constructor() {
    super();
    this.farm = null;          // GET /api/farm
    this.nodes = new Map();    // id → Node
    this.shots = new Map();    // id → Shot (summary)
    this.latest = null;        // last rendered Frame
    this.conn = 'connecting';
    this.loaded = false;
    this.reloads = 0;          // how many times everything was (re)loaded
    this.version = null;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setConn(state) {
    if (this.conn === state) return;
    this.conn = state;
    this.emit('conn', state);
  }

  load({ farm, nodes, shots, latest }) {
    this.farm = farm;
    if (farm && farm.version) this.version = farm.version;
    this.nodes = new Map(nodes.map((n) => [n.id, n]));
    this.shots = new Map(shots.map((s) => [s.id, s]));
    this.latest = latest;
    this.loaded = true;
    this.reloads++;
    this.emit('reload');
  }

  setFarm(farm) {
    this.farm = farm;
    this.emit('farm', farm);
  }

  applyShot(shot) {
    if (shot.status === 'deleted') {
      this.shots.delete(shot.id);  // (api.js then fetches the last frame again if it was this shot's)
    } else {
      const old = this.shots.get(shot.id);
      this.shots.set(shot.id, old ? { ...old, ...shot } : shot);
    }
    this.emit('shot', shot);
  }

  applyNode(node) {
    const old = this.nodes.get(node.id);
    this.nodes.set(node.id, old ? { ...old, ...node } : node);
    this.emit('node', this.nodes.get(node.id));
    this.emit('farm', this.farm);
  }

  applyFrame(frame) {
    const cur = this.latest;
    if (!cur || (frame.rendered_at ?? Infinity) >= (cur.rendered_at ?? 0)) this.latest = frame;
    this.emit('frame', frame);
  }

  /** The last rendered frame changed other than by a `frame` event (its shot was deleted). */
  setLatest(frame) {
    this.latest = frame;
    this.emit('latest', frame);
  }

  applyJob(job) {
    this.emit('job', job);
  }

  /** Node counts, live from the node list (falls back on the farm summary). */
  nodeCounts() {
    if (!this.nodes.size && this.farm && this.farm.nodes) return { ...this.farm.nodes };
    const c = { idle: 0, rendering: 0, asleep: 0, offline: 0, disabled: 0 };
    for (const n of this.nodes.values()) {
      if (n.status === 'offline') c.offline++;
      else if (n.status === 'rendering') c.rendering++;
      else if (n.enabled === false) c.disabled++;
      else if (n.status === 'asleep') c.asleep++;
      else c.idle++;
    }
    return c;
  }

  /** Shots, newest first. */
  shotList() {
    return [...this.shots.values()].sort((a, b) => (b.created_at ?? 0) - (a.created_at ?? 0));
  }
}

export const store = new Store();
