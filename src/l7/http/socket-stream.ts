// The client connection as a plain stream with the relay's first bytes in front. Node's HTTP/2
// session reads a real socket's handle directly and would never see bytes already read from it
// (`head`); through this stream it reads them first, then everything after.
import { Duplex } from "node:stream";
import type { Socket } from "node:net";

export function withHead(client: Socket, head: Buffer): Duplex {
  const stream = new Duplex({
    read: () => {
      client.resume();
    },
    write: (chunk: Buffer, _encoding, done) => {
      client.write(chunk, (err) => done(err ?? null));
    },
    final: (done) => {
      client.end(done);
    },
    destroy: (err, done) => {
      client.destroy();
      done(err);
    },
  });
  if (head.length > 0) stream.push(head);
  client.on("data", (chunk: Buffer) => {
    if (!stream.push(chunk)) client.pause();
  });
  client.on("end", () => stream.push(null));
  client.on("close", () => stream.destroy());
  client.on("error", (err) => stream.destroy(err));
  return stream;
}
