// Live events over WebSocket (RFC 6455), server side only as far as moat needs: the handshake,
// one text message per event, ping/pong and close. Client messages are otherwise ignored.
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { EventFilter } from "../observe/filter.ts";
import { sizeSendBuffer } from "./send-buffer.ts";
import { wsText, type SubscriberHub } from "./subscribers.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const OP = { text: 0x1, close: 0x8, ping: 0x9, pong: 0xa } as const;

const frame = (opcode: number, payload: Buffer) => wsText(payload, opcode);

/** Bytes of client frames held at once: clients send only pings and closes. */
const MAX_CLIENT_BYTES = 64 << 10;

/**
 * Client frames (always masked); calls `on` per complete frame, keeps the rest; calls
 * `tooLarge` (and stops) when more than MAX_CLIENT_BYTES would be held once the complete frames
 * are taken (a burst of small frames is fine), or a frame claims more than that.
 */
function parser(
  on: (opcode: number, payload: Buffer) => void,
  tooLarge: () => void,
): (chunk: Buffer) => void {
  let buffer: Buffer = Buffer.alloc(0);
  let stopped = false;
  const stop = () => {
    stopped = true;
    buffer = Buffer.alloc(0);
    tooLarge();
  };
  return (chunk) => {
    if (stopped) return;
    buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk;
    for (;;) {
      if (buffer.length < 2) break;
      const opcode = (buffer[0] ?? 0) & 0x0f;
      let len = (buffer[1] ?? 0) & 0x7f;
      let at = 2;
      if (len === 126) {
        if (buffer.length < 4) break;
        len = buffer.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (buffer.length < 10) break;
        len = Number(buffer.readBigUInt64BE(2));
        at = 10;
      }
      const masked = ((buffer[1] ?? 0) & 0x80) !== 0;
      const end = at + (masked ? 4 : 0) + len;
      if (end > MAX_CLIENT_BYTES) return stop();
      if (buffer.length < end) break;
      const payload = Buffer.from(buffer.subarray(end - len, end));
      if (masked) for (let i = 0; i < len; i++) payload[i]! ^= buffer[at + (i & 3)]!;
      buffer = buffer.subarray(end);
      on(opcode, payload);
      if (stopped) return;
    }
    if (buffer.length > MAX_CLIENT_BYTES) return stop();
    // the rest is copied: a view would keep the whole chunk alive
    if (buffer.length) buffer = Buffer.from(buffer);
  };
}

export function acceptWebSocket(
  req: IncomingMessage,
  socket: Duplex,
  filter: EventFilter,
  hub: SubscriberHub,
): void {
  const maxBuffered = hub.maxBufferedBytes;
  const key = req.headers["sec-websocket-key"];
  const accept = createHash("sha1")
    .update(`${String(key)}${GUID}`)
    .digest("base64");
  const done = hub.add(filter, {
    framing: "websocket",
    write: (bytes) => socket.write(bytes),
    buffered: () => socket.writableLength,
    sendBuffer: (bytes) => sizeSendBuffer(socket, bytes),
    keepalive: () => socket.write(frame(OP.ping, Buffer.alloc(0))),
    end: () => socket.end(frame(OP.close, Buffer.from([0x03, 0xe9]))), // 1001 going away
  });
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  socket.on(
    "data",
    parser(
      (opcode, payload) => {
        if (socket.destroyed || socket.writableEnded) return;
        if (opcode === OP.ping) {
          // a client that pings and never reads would have its pongs held without bound
          if (socket.writableLength > maxBuffered) socket.destroy();
          else socket.write(frame(OP.pong, payload));
        } else if (opcode === OP.close) socket.end(frame(OP.close, payload.subarray(0, 2)));
      },
      () => socket.destroy(),
    ),
  );
  socket.once("close", done);
  socket.on("error", done);
}
