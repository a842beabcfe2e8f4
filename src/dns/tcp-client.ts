// A DNS client of the proxy over TCP (RFC 7766): 2-byte length framing, several queries per
// connection answered as they complete, within bounds a local client cannot push the daemon past:
// it is not read while its unsent answers or its queries in flight are over a bound (read again
// once they drain), a query must arrive whole within a deadline of its first byte (bytes that keep
// coming do not extend it), an idle connection is closed, and the proxy caps its connections, in
// all and per asking uid. An answer is never more than the 2-byte length says.
import type { Socket } from "node:net";
import { errorAnswer, MAX_MESSAGE } from "./answer.ts";

export interface TcpLimits {
  /**
   * Open connections to the proxy (all its listeners); past it one of the uid holding the most
   * is closed (root's only when no other uid holds one), its oldest idle one first.
   */
  maxClients: number;
  /** Open connections of one uid (unknown askers count as one); past it its own oldest is closed. */
  maxClientsPerUid: number;
  /** Answers written but not yet taken by the client, in bytes, past which it is not read. */
  maxUnsentBytes: number;
  /** A connection's queries waiting for their answers, past which it is not read. */
  maxInFlight: number;
  /** From a query's first byte to its last. */
  queryDeadlineMs: number;
  /** A connection with no traffic is closed after this long (RFC 7766 leaves it to the server). */
  idleMs: number;
}

export const TCP_LIMITS: TcpLimits = {
  maxClients: 256,
  maxClientsPerUid: 64,
  maxUnsentBytes: 64 * 1024,
  maxInFlight: 16,
  queryDeadlineMs: 5000,
  idleMs: 10_000,
};

/** One query's answer (null: none is sent). */
export type TcpAnswer = (query: Buffer) => Promise<Buffer | null>;

export class TcpClient {
  private chunks: Buffer[] = [];
  private length = 0;
  private inFlight = 0;
  /** The client shut its sending side (its server was made with allowHalfOpen). */
  private ended = false;
  private deadline: NodeJS.Timeout | null = null;
  readonly socket: Socket;
  /** Who connected, as the kernel recorded it (null: unknown). */
  readonly uid: number | null;
  private readonly limits: TcpLimits;
  private readonly answer: TcpAnswer;
  private readonly log: (line: string) => void;

  constructor(
    socket: Socket,
    limits: TcpLimits,
    who: { uid: number | null; log: (line: string) => void },
    answer: TcpAnswer,
  ) {
    this.socket = socket;
    this.limits = limits;
    this.uid = who.uid;
    this.log = who.log;
    this.answer = answer;
    socket.setTimeout(limits.idleMs, () => socket.destroy());
    socket.on("data", (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.pump();
    });
    socket.on("drain", () => this.pump());
    // a client may shut its side once its queries are sent (RFC 7766 6.2.1 lets it): they are
    // answered, then moat's side is shut too
    socket.on("end", () => {
      this.ended = true;
      this.pump();
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.stopDeadline());
  }

  /** Nothing asked and nothing half-sent: the connection to close first when too many are open. */
  idle(): boolean {
    return this.inFlight === 0 && this.length === 0;
  }

  /** Answers the whole queries buffered while under the bounds; reads on only while under them. */
  private pump(): void {
    if (this.socket.destroyed) return;
    while (!this.full()) {
      const query = this.nextQuery();
      if (!query) break;
      this.inFlight++;
      this.answer(query)
        .then((reply) => this.send(query, reply))
        .catch((err: unknown) => this.fail(err));
    }
    if (this.ended && this.inFlight === 0) {
      // every whole query answered; a part of one left will never be whole
      this.stopDeadline();
      this.socket.end();
    } else if (this.full()) {
      // not read meanwhile: a query it left half-sent is not the client's delay
      this.socket.pause();
      this.stopDeadline();
    } else {
      this.socket.resume();
      // once the client has shut its side, a part of a query left is not waited on
      if (this.ended) this.stopDeadline();
      else this.watchPartial();
    }
  }

  private send(query: Buffer, reply: Buffer | null): void {
    this.inFlight--;
    if (this.socket.destroyed) return;
    if (reply) {
      // more than the length can say: the client gets SERVFAIL, never a wrong frame
      const out = reply.length > MAX_MESSAGE ? errorAnswer(query, "SERVFAIL") : reply;
      const length = Buffer.from([out.length >> 8, out.length & 0xff]);
      this.socket.write(Buffer.concat([length, out]));
    }
    this.pump();
  }

  /** A bug in answering: logged, and this client's connection closed (moat runs on). */
  private fail(err: unknown): void {
    this.log(
      `dns proxy (tcp): answering ${this.socket.remoteAddress ?? ""}:${this.socket.remotePort ?? 0} failed: ${(err as Error).stack ?? String(err)}`,
    );
    this.socket.destroy();
  }

  private full(): boolean {
    return (
      this.inFlight >= this.limits.maxInFlight ||
      this.socket.writableLength > this.limits.maxUnsentBytes
    );
  }

  /** The next whole query, taken off the buffer; null until one has arrived. */
  private nextQuery(): Buffer | null {
    if (this.length < 2) return null;
    // chunks joined only for a whole query (a query sent a byte at a time is copied once)
    if (this.chunks[0]!.length < 2) this.chunks = [Buffer.concat(this.chunks, this.length)];
    const need = 2 + this.chunks[0]!.readUInt16BE(0);
    if (this.length < need) return null;
    const all =
      this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length);
    const query = Buffer.from(all.subarray(2, need));
    const rest = all.subarray(need);
    this.chunks = rest.length ? [rest] : [];
    this.length = rest.length;
    return query;
  }

  /** A part of a query buffered starts its deadline; a whole one (or none) stops it. */
  private watchPartial(): void {
    const partial = this.length > 0 && !this.holdsQuery();
    if (!partial) return this.stopDeadline();
    if (this.deadline) return;
    this.deadline = setTimeout(() => this.socket.destroy(), this.limits.queryDeadlineMs);
    this.deadline.unref();
  }

  private holdsQuery(): boolean {
    if (this.length < 2) return false;
    const first = this.chunks[0]!;
    const size = first.length >= 2 ? first.readUInt16BE(0) : (first[0]! << 8) | this.chunks[1]![0]!;
    return this.length >= 2 + size;
  }

  private stopDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = null;
  }
}

/**
 * Makes room for a new connection of `uid`: past its share, one of its own is closed; with every
 * slot taken, one of the uid holding the most (root's only when no other uid holds any). Either
 * way the oldest idle one, else the oldest: a connection with queries stuck on a silent server is
 * never idle, and one uid's such connections must not keep the others out.
 */
export function makeRoom(
  clients: ReadonlyMap<Socket, TcpClient>,
  limits: TcpLimits,
  uid: number | null,
): void {
  // insertion order is age order; a connection closed already is leaving the table
  const byUid = new Map<number | null, TcpClient[]>();
  let open = 0;
  for (const c of clients.values()) {
    if (c.socket.destroyed) continue;
    open++;
    const list = byUid.get(c.uid);
    if (list) list.push(c);
    else byUid.set(c.uid, [c]);
  }
  const own = byUid.get(uid) ?? [];
  if (own.length >= limits.maxClientsPerUid) closeOldest(own);
  else if (open >= limits.maxClients) closeOldest(heaviest(byUid));
}

/** The connections of the uid holding the most, root's last. */
function heaviest(byUid: ReadonlyMap<number | null, TcpClient[]>): TcpClient[] {
  let most: TcpClient[] = [];
  for (const [uid, list] of byUid) if (uid !== 0 && list.length > most.length) most = list;
  return most.length > 0 ? most : (byUid.get(0) ?? []);
}

function closeOldest(clients: readonly TcpClient[]): void {
  (clients.find((c) => c.idle()) ?? clients[0])?.socket.destroy();
}
