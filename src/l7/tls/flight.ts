// One direction of a handshake as the relay reads it: the bytes read so far (to forward as they
// came) and the handshake messages in them. Reading resumes the socket only while a message is
// awaited and pauses it again, so nothing is read that is not kept. What a peer sent after a
// message (0-RTT early data after a ClientHello) can be held back while that message goes on.

import type { Socket } from "node:net";
import { HandshakeReader, type HandshakeRead } from "./handshake-reader.ts";

export type FlightRead = HandshakeRead | { kind: "timeout" } | { kind: "closed" };

export class Flight {
  private readonly reader = new HandshakeReader();
  /** The bytes read and not yet taken, as they came. */
  private raw: Buffer[] = [];
  /** Where in the stream the bytes in `raw` start: how many were taken. */
  private taken = 0;
  /** Where in the stream the record holding the end of the last message read ends. */
  private messageEnd = 0;
  private readonly socket: Socket;

  constructor(socket: Socket, head?: Buffer) {
    this.socket = socket;
    if (head && head.length > 0) this.add(head);
  }

  /** The bytes read and not yet taken; taking them empties the list. */
  takeAll(): Buffer {
    const bytes = Buffer.concat(this.raw);
    this.raw = [];
    this.taken += bytes.length;
    return bytes;
  }

  /**
   * The bytes not yet taken up to the end of the record that holds the last message read: that
   * message and what came before it, not the records after it (they wait for takeAll()).
   */
  takeThroughMessage(): Buffer {
    let left = this.messageEnd - this.taken;
    const through: Buffer[] = [];
    while (left > 0) {
      const chunk = this.raw.shift();
      if (!chunk) break;
      const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
      if (part !== chunk) this.raw.unshift(chunk.subarray(left));
      through.push(part);
      left -= part.length;
    }
    const bytes = Buffer.concat(through);
    this.taken += bytes.length;
    return bytes;
  }

  /** The next handshake message, or why there is none before `deadline` (ms since epoch). */
  next(deadline: number): Promise<FlightRead> {
    const ready = this.read();
    if (ready.kind !== "more") return Promise.resolve(ready);
    const socket = this.socket;
    if (socket.destroyed || socket.readableEnded) return Promise.resolve({ kind: "closed" });
    return new Promise((resolve) => {
      const done = (read: FlightRead) => {
        clearTimeout(timer);
        socket.off("data", onData);
        socket.off("end", onEnd);
        socket.off("close", onEnd);
        socket.off("error", onEnd);
        socket.pause();
        resolve(read);
      };
      const onData = (chunk: Buffer) => {
        this.add(chunk);
        const read = this.read();
        if (read.kind !== "more") done(read);
      };
      const onEnd = () => done({ kind: "closed" });
      const timer = setTimeout(() => done({ kind: "timeout" }), Math.max(0, deadline - Date.now()));
      socket.on("data", onData);
      socket.once("end", onEnd);
      socket.once("close", onEnd);
      socket.once("error", onEnd);
      socket.resume();
    });
  }

  private read(): HandshakeRead {
    const read = this.reader.next();
    if (read.kind === "message") this.messageEnd = this.reader.recordBytes;
    return read;
  }

  private add(chunk: Buffer): void {
    this.raw.push(chunk);
    this.reader.push(chunk);
  }
}
