// One direction of a handshake as the relay reads it: the bytes read so far (to forward as they
// came) and the handshake messages in them. Reading resumes the socket only while a message is
// awaited and pauses it again, so nothing is read that is not kept.

import type { Socket } from "node:net";
import { HandshakeReader, type HandshakeRead } from "./handshake-reader.ts";

export type FlightRead = HandshakeRead | { kind: "timeout" } | { kind: "closed" };

export class Flight {
  private readonly reader = new HandshakeReader();
  private raw: Buffer[] = [];
  private readonly socket: Socket;

  constructor(socket: Socket, head?: Buffer) {
    this.socket = socket;
    if (head && head.length > 0) this.add(head);
  }

  /** The bytes read and not yet taken; taking them empties the list. */
  take(): Buffer {
    const bytes = Buffer.concat(this.raw);
    this.raw = [];
    return bytes;
  }

  /** The next handshake message, or why there is none before `deadline` (ms since epoch). */
  next(deadline: number): Promise<FlightRead> {
    const ready = this.reader.next();
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
        const read = this.reader.next();
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

  private add(chunk: Buffer): void {
    this.raw.push(chunk);
    this.reader.push(chunk);
  }
}
