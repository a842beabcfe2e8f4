// Reading a connection's first bytes before anything is forwarded: until `enough` says so, the
// client ends, the header timeout passes, or `max` bytes are buffered (a bound, never more).
import type { Socket } from "node:net";

export interface HeadRead {
  head: Buffer;
  /** Why reading stopped. */
  end: "enough" | "timeout" | "closed" | "full";
}

/** Reads from the paused `socket` onto `head`; leaves it paused. */
export function readHead(
  socket: Socket,
  head: Buffer,
  enough: (head: Buffer) => boolean,
  timeoutMs: number,
  max: number,
): Promise<HeadRead> {
  if (enough(head)) return Promise.resolve({ head, end: "enough" });
  if (head.length >= max) return Promise.resolve({ head, end: "full" });
  return new Promise((resolve) => {
    let got = head;
    const done = (end: HeadRead["end"]) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onClosed);
      socket.off("close", onClosed);
      socket.off("error", onClosed);
      socket.pause();
      resolve({ head: got, end });
    };
    const onData = (chunk: Buffer) => {
      const room = max - got.length;
      const surplus = chunk.length > room ? chunk.subarray(room) : null;
      // the first chunk is the head as it is (no copy); later ones are appended
      const part = surplus ? chunk.subarray(0, room) : chunk;
      got = got.length === 0 ? part : Buffer.concat([got, part]);
      if (enough(got)) done("enough");
      else if (got.length >= max) done("full");
      // what is past `max` goes back to the socket's buffer once reading stopped (done pauses
      // it): unshifted into a flowing socket it would come back as 'data' at once, before `got`
      if (surplus) socket.unshift(surplus);
    };
    const onClosed = () => done("closed");
    const timer = setTimeout(() => done("timeout"), timeoutMs);
    socket.on("data", onData);
    socket.once("end", onClosed);
    socket.once("close", onClosed);
    socket.once("error", onClosed);
    socket.resume();
  });
}
