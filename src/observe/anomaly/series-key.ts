// The keys of a record's series in the beacon and new-destination detectors ("<peer>
// <protocol>/<port>" and "<destination> <protocol>/<port>") without building a string or
// looking up more than one map per record: the keys of recent peers are kept, so a record of a
// peer seen a moment ago finds both keys by its peer (a string the record already has, whose
// hash V8 keeps with it) and a short scan of the peer's ports; the detectors' own maps are then
// looked up with strings whose hashes are kept too. A key built per record is a new string each
// time: hashing it, and collecting it, was most of what a detector's lookup cost.
import { destinationOf } from "./destination.ts";

/** A peer's keys on one protocol and port. */
export interface SeriesKeys {
  protocol: string;
  port: number;
  /** The peer's destination (destination.ts). */
  destination: string;
  /** The beacon series: `${peer} ${protocol}/${port}`, the peer its name, else its address. */
  series: string;
  /** The new-destination key: `${destination} ${protocol}/${port}`. */
  destinationKey: string;
  /** The same peer's keys on its next port (a chain: one object to read for most records). */
  next: SeriesKeys | undefined;
}

/** Peers whose keys are kept; past it, all are forgotten (they are rebuilt on use). */
const MAX_PEERS = 32_768;
/** Keys kept per peer. */
const MAX_PORTS = 8;

/** Destination keys kept; past it, all are forgotten. */
const MAX_DESTINATIONS = 32_768;

/** Each peer's keys, the port it was used on last added first. */
const peers = new Map<string, SeriesKeys>();
/** One string a destination key, whichever of the destination's peers it comes from: a
 * detector's map then finds it by identity, without comparing two equal strings. */
const destinationKeys = new Map<string, string>();

/** The keys of a connection to `remote` on `protocol`/`port`. */
export function seriesKeysOf(
  remote: { ip: string; names?: string[] },
  protocol: string,
  port: number,
): SeriesKeys {
  const name = remote.names?.[0] ?? remote.ip;
  const first = peers.get(name);
  // a peer is used on a port or two: a short scan
  let ports = 0;
  for (let k = first; k; k = k.next, ports++)
    if (k.port === port && k.protocol === protocol) return k;
  const destination = first ? first.destination : destinationOf(remote);
  const keys: SeriesKeys = {
    protocol,
    port,
    destination,
    series: `${name} ${protocol}/${port}`,
    destinationKey: destinationKey(`${destination} ${protocol}/${port}`),
    next: first,
  };
  // a peer used on many ports (a scan) gets built keys for the ones past the first few
  if (ports < MAX_PORTS) {
    if (!first && peers.size >= MAX_PEERS) peers.clear();
    peers.set(name, keys);
  }
  return keys;
}

function destinationKey(key: string): string {
  let kept = destinationKeys.get(key);
  if (kept === undefined) {
    if (destinationKeys.size >= MAX_DESTINATIONS) destinationKeys.clear();
    destinationKeys.set(key, (kept = key));
  }
  return kept;
}
