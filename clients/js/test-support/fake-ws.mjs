// A scripted WebSocket for the client's unit tests: each `new FakeWS(url)` is recorded, frames the client sends are
// kept parsed, and the test plays the hub (greet, send frames, close with a code). No network, no real timers.
export class FakeWS {
  static all = [];
  static reset() {
    FakeWS.all = [];
  }
  static get last() {
    return FakeWS.all.at(-1);
  }

  constructor(url) {
    this.url = new URL(url);
    this.sent = [];
    this.closed = null;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    FakeWS.all.push(this);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  close(code) {
    this.closed = code ?? 1005;
  }

  /** The hub's greeting. */
  greet({ epoch = 'E1', last_seq = 0, heartbeat_s = 25 } = {}) {
    this.onopen?.({});
    this.frame({ type: 'connected', connection_id: 'c1', epoch, last_seq, heartbeat_s });
  }

  frame(obj) {
    this.onmessage?.({ data: JSON.stringify(obj) });
  }

  event(seq, channel = 'a', event = 'e') {
    this.frame({ type: 'event', seq, id: `id${seq}`, channel, event, data: { seq }, source: 'rest', ts: 't' });
  }

  /** The hub ends the connection (1006 is a socket that just died). */
  drop(code = 1006) {
    this.onclose?.({ code, reason: '' });
  }

  /** Frames of `type` the client sent. */
  sentOf(type) {
    return this.sent.filter((f) => f.type === type);
  }
}
