// The flow aggregator's key for a record without building a string per record: each field of
// the key (identity, peer, local address, port, protocol, direction, verdict, rule, mode) as a
// small number, the strings numbered as they are first seen, and the summaries found by a hash
// of those numbers. A key string built per record (JSON of the fields) had to be made, hashed
// and collected for every record: most of what the aggregator cost.
import type { FlowConnection } from "./record.ts";
import { identityOf, nameOnly, peerOf, serverPort } from "./record.ts";

/** Fields of a key. */
const FIELDS = 9;
/** Past this many numbered strings, the numbering starts afresh with the next window. */
const MAX_NUMBERED = 1 << 18;

/** A key's fields as numbers; -1: a string not numbered yet (no summary has it). */
export type KeyFields = Int32Array;

export class SummaryKeys {
  #numbers = new Map<string, number>();
  /** Each field's last string and its number. */
  #last: (string | undefined)[] = new Array<string | undefined>(FIELDS);
  readonly #lastNumber = new Int32Array(FIELDS);
  /** Identities by process facts (the same object for a process's records). */
  #identities = new WeakMap<object, number>();

  /** A buffer for `fieldsOf` (reused: no allocation per record). */
  readonly scratch: KeyFields = new Int32Array(FIELDS);

  /**
   * The key of `c` into `out`, and its hash; with `number` false, strings not seen yet are not
   * numbered (-1: the key is new).
   */
  fieldsOf(c: FlowConnection, number: boolean, out: KeyFields): number {
    out[0] = this.#identity(c, number);
    out[1] = this.#field(1, peerOf(c), number);
    out[2] = this.#field(2, c.local.ip, number);
    out[3] = serverPort(c);
    out[4] = this.#field(4, c.protocol, number);
    out[5] = this.#field(5, c.direction, number);
    out[6] = this.#field(6, c.verdict, number);
    out[7] = this.#field(7, c.rule, number);
    out[8] = this.#field(8, c.mode, number);
    let h = 0x811c9dc5;
    for (let i = 0; i < FIELDS; i++) h = Math.imul(h ^ out[i]!, 0x01000193);
    // a small integer: V8 keeps it unboxed and hashes it cheaply
    return (h ^ (h >>> 15)) & 0x3fffffff;
  }

  /** Called between windows, when no summary holds the numbers: a bound on what is kept. */
  trim(): void {
    if (this.#numbers.size <= MAX_NUMBERED) return;
    this.#numbers = new Map();
    this.#identities = new WeakMap();
    this.#last = new Array<string | undefined>(FIELDS);
  }

  /** A string field's number: the same as the last record's, most of the time (the same
   * protocol, direction, verdict, mode, rule and local address), without a lookup. */
  #field(i: number, s: string, number: boolean): number {
    if (s === this.#last[i]) return this.#lastNumber[i]!;
    const n = this.#number(s, number);
    if (n >= 0) {
      this.#last[i] = s;
      this.#lastNumber[i] = n;
    }
    return n;
  }

  #number(s: string, number: boolean): number {
    let n = this.#numbers.get(s);
    if (n === undefined) {
      if (!number) return -1;
      this.#numbers.set(s, (n = this.#numbers.size));
    }
    return n;
  }

  #identity(c: FlowConnection, number: boolean): number {
    const p = c.process;
    let n = p ? this.#identities.get(p) : undefined;
    if (n !== undefined) return n;
    const id = identityOf(c);
    // a comm and an executable path with the same text are two identities
    const key = [id.exe, nameOnly(c), id.user, id.cgroup, id.container];
    n = this.#number(JSON.stringify(key), number);
    if (p && n >= 0) this.#identities.set(p, n);
    return n;
  }
}

export const sameFields = (a: KeyFields, b: KeyFields): boolean => {
  for (let i = 0; i < FIELDS; i++) if (a[i] !== b[i]) return false;
  return true;
};
