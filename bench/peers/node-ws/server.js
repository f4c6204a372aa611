'use strict';
// Switchboard benchmark peer: Node built-in http + `ws` broadcast hub.
// Usage: node server.js PORT   (binds 127.0.0.1 only)

const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');

const port = Number.parseInt(process.argv[2], 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node server.js PORT');
  process.exit(2);
}

const MAX_BODY = 64 * 1024;
const HEALTH = Buffer.from('{"status":"ok"}');
const JSON_HDR = 'application/json';

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  clientTracking: true, // closed clients are removed from wss.clients automatically
  maxPayload: MAX_BODY,
});

wss.on('connection', (ws) => {
  ws.on('error', () => {}); // client frames are ignored; ws answers pings itself
});

function reply(res, status, body) {
  res.writeHead(status, { 'Content-Type': JSON_HDR, 'Content-Length': body.length });
  res.end(body);
}

function broadcast(buf) {
  let delivered = 0;
  for (const ws of wss.clients) {
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(buf, { binary: false }); // one text frame, payload buffer shared
      delivered++;
    }
  }
  return delivered;
}

function pathOf(url) {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

const server = http.createServer((req, res) => {
  const path = pathOf(req.url);
  if (req.method === 'POST' && path === '/publish') {
    const declared = Number(req.headers['content-length']);
    if (declared > MAX_BODY) {
      reply(res, 413, Buffer.from('{"error":"too large"}'));
      req.resume();
      return;
    }
    const chunks = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c) => {
      if (tooBig) return;
      size += c.length;
      if (size > MAX_BODY) { tooBig = true; return; }
      chunks.push(c);
    });
    req.on('end', () => {
      if (tooBig) { reply(res, 413, Buffer.from('{"error":"too large"}')); return; }
      const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      const n = broadcast(buf);
      reply(res, 200, Buffer.from('{"delivered":' + n + '}'));
    });
    return;
  }
  if (req.method === 'GET' && path === '/health') {
    reply(res, 200, HEALTH);
    return;
  }
  reply(res, 404, Buffer.from('{"error":"not found"}'));
});

server.on('upgrade', (req, socket, head) => {
  if (pathOf(req.url) !== '/ws') {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

// Load tool reuses keep-alive connections; don't drop them after Node's 5 s default.
server.keepAliveTimeout = 120000;
server.headersTimeout = 121000;

server.listen(port, '127.0.0.1', 2048);
