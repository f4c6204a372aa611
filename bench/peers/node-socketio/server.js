'use strict';
// Switchboard benchmark peer: Node built-in http + socket.io 4.8 (WebSocket transport only, rooms).
// Usage: node server.js PORT   (binds 127.0.0.1 only)
//
//   GET  /health                       -> 200 {"status":"ok"}
//   socket.io at /socket.io/ (EIO=4, transport=websocket); a client emits
//     `subscribe` {room} with an ack    -> joins the room, ack {status:"success", room}
//   POST /publish {room?, event?, data} -> emits `event` (default "tick") with `data` as its payload
//                                          to `room` (default "bench"), then 200 {"delivered":N}

const http = require('http');
const { Server } = require('socket.io');

const port = Number.parseInt(process.argv[2], 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node server.js PORT');
  process.exit(2);
}

const MAX_BODY = 64 * 1024;
const HEALTH = Buffer.from('{"status":"ok"}');
const JSON_HDR = 'application/json';

function reply(res, status, body) {
  res.writeHead(status, { 'Content-Type': JSON_HDR, 'Content-Length': body.length });
  res.end(body);
}

function pathOf(url) {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

// socket.io answers its own path (/socket.io/) first and hands every other request to this listener.
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
      let msg;
      try {
        msg = JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
      } catch {
        reply(res, 400, Buffer.from('{"error":"invalid json"}'));
        return;
      }
      if (msg === null || typeof msg !== 'object' || !('data' in msg)) {
        reply(res, 400, Buffer.from('{"error":"data is required"}'));
        return;
      }
      const room = typeof msg.room === 'string' ? msg.room : 'bench';
      const event = typeof msg.event === 'string' ? msg.event : 'tick';
      const members = io.sockets.adapter.rooms.get(room);
      io.to(room).emit(event, msg.data); // encoded once, the frame shared by every member
      reply(res, 200, Buffer.from('{"delivered":' + (members ? members.size : 0) + '}'));
    });
    return;
  }
  if (req.method === 'GET' && path === '/health') {
    reply(res, 200, HEALTH);
    return;
  }
  reply(res, 404, Buffer.from('{"error":"not found"}'));
});

const io = new Server(server, {
  transports: ['websocket'], // no HTTP long-polling: clients connect straight over WebSocket
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  maxHttpBufferSize: MAX_BODY,
});

io.on('connection', (socket) => {
  socket.on('subscribe', (msg, ack) => {
    const room = msg && typeof msg.room === 'string' ? msg.room : 'bench';
    socket.join(room);
    if (typeof ack === 'function') ack({ status: 'success', room });
  });
});

// Load tool reuses keep-alive connections; don't drop them after Node's 5 s default.
server.keepAliveTimeout = 120000;
server.headersTimeout = 121000;

server.listen(port, '127.0.0.1', 2048);
