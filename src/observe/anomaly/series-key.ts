// The key of a detector's series ("<peer or destination> <protocol>/<port>") without building a
// string per record: the keys of recent peers are kept, so a record of a peer seen a moment ago
// finds its key by its peer (a string the record already has, whose hash V8 keeps with it) and
// its port, and the detector's own map is then looked up with a string whose hash is kept too.
// A key built per record is a new string each time: hashing it, and collecting it, was most of
// what a detector's lookup cost.

interface Keyed {
  protocol: string;
  port: number;
  key: string;
}

/** Peers whose keys are kept; past it, all are forgotten (they are rebuilt on use). */
const MAX_PEERS = 32_768;
/** Keys kept per peer. */
const MAX_PORTS = 8;

export class SeriesKeys {
  readonly #byPeer = new Map<string, Keyed[]>();

  /** `${peer} ${protocol}/${port}`, the same string for the same three while it is kept. */
  of(peer: string, protocol: string, port: number): string {
    let keyed = this.#byPeer.get(peer);
    if (keyed === undefined) {
      if (this.#byPeer.size >= MAX_PEERS) this.#byPeer.clear();
      this.#byPeer.set(peer, (keyed = []));
    }
    // a peer is used on a port or two: a short scan
    for (const k of keyed) if (k.port === port && k.protocol === protocol) return k.key;
    const key = `${peer} ${protocol}/${port}`;
    // a peer used on many ports (a scan) gets a built key for the ones past the first few
    if (keyed.length < MAX_PORTS) keyed.push({ protocol, port, key });
    return key;
  }
}
