// WebSocket /stream: subscribe to symbols, receive quotes, order and fill events, heartbeats.
// Quotes are public; order and fill events come only after {"op":"auth","key":...} with the
// admin key the console already holds (sent in a message, never in the URL).
// Reconnects with capped backoff and resubscribes; treats silence past two heartbeats as dead.

export class Stream {
  constructor({ onQuotes, onOrder, onFill, onStatus, key }) {
    this.handlers = { onQuotes, onOrder, onFill, onStatus };
    this.key = key || (() => null);
    this.wanted = new Set();
    this.ws = null;
    this.backoff = 500;
    this.heartbeat = 15;
    this.lastSeen = 0;
    this.watchdog = null;
    this.reconnectTimer = null;
    this.closed = false;
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return `${proto}//${location.host}/stream`;
  }

  connect() {
    if (this.closed) return;
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      this.lastSeen = Date.now();
      this.handlers.onStatus?.(true);
      this.authenticate();
      if (this.wanted.size) this.send({ op: "subscribe", symbols: [...this.wanted] });
      clearInterval(this.watchdog);
      this.watchdog = setInterval(() => {
        if (Date.now() - this.lastSeen > this.heartbeat * 2500) ws.close();
      }, 2000);
    };
    ws.onmessage = (ev) => {
      this.lastSeen = Date.now();
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      switch (msg.type) {
        case "quotes":
          this.handlers.onQuotes?.(msg.data || []);
          break;
        case "order":
          this.handlers.onOrder?.(msg.data);
          break;
        case "fill":
          this.handlers.onFill?.(msg.data);
          break;
        case "welcome":
          if (msg.heartbeat > 0) this.heartbeat = msg.heartbeat;
          break;
        case "error":
          console.warn("stream:", msg.error, msg.symbols || "");
          break;
        default: // subscribed, unsubscribed, heartbeat, pong
      }
    };
    ws.onclose = () => {
      clearInterval(this.watchdog);
      this.handlers.onStatus?.(false);
      if (this.ws !== ws || this.closed) return;
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 15_000);
    };
    ws.onerror = () => {}; // onclose follows and reconnects
  }

  /** Present the admin key (if any) so order and fill events flow on this connection. */
  authenticate() {
    const key = this.key();
    if (key) this.send({ op: "auth", key });
  }

  send(msg) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /** Make the subscription exactly `symbols`. */
  setSymbols(symbols) {
    const next = new Set(symbols);
    const add = [...next].filter((s) => !this.wanted.has(s));
    const drop = [...this.wanted].filter((s) => !next.has(s));
    this.wanted = next;
    if (drop.length) this.send({ op: "unsubscribe", symbols: drop });
    if (add.length) this.send({ op: "subscribe", symbols: add });
  }
}
