// The kernel's redirect state (bpf/include/redirect.h) as user space writes and reads it: where
// each redirect sends connections, which endpoints are targets (never redirected again), the
// daemon's own process (never redirected), and the original destination of a redirected client.
import {
  client as clientCodec,
  netnsPorts as netnsPortsCodec,
  endpoint as endpointCodec,
  original as originalCodec,
  owner as ownerCodec,
  redirect as redirectCodec,
  RedirectFlag,
  Unavailable,
} from "./abi.ts";
import { formatAddress, mappedAddress, writeMappedAddress } from "./address.ts";
import { decodeOwner } from "./events.ts";
import { native } from "./addon.ts";
import type { BpfMap, BpfObject } from "./native.d.ts";
import { BPF_F_INNER_MAP, MAP_ARRAY, createMap, fill } from "./table-maps.ts";
import type { KernelOwner } from "../attribution/index.ts";

export interface SocketAddress {
  ip: string;
  port: number;
}

/** Where a redirected client meant to go, as the kernel recorded it at connect(). */
export interface OriginalDestination {
  original: SocketAddress;
  protocol: "tcp" | "udp";
  /** The redirect's index in `generation`. */
  redirect: number;
  generation: number;
  /** Where the kernel sent it (the redirect's target, or moat's relay). */
  target: SocketAddress;
  owner: KernelOwner | null;
}

const PROTOCOL = { tcp: 6, udp: 17 } as const;

function endpointKey(ip: string | null, port: number, protocol: number): Buffer {
  const key = Buffer.alloc(endpointCodec.size);
  endpointCodec.encode(
    { addr: ip === null ? Buffer.alloc(16) : mappedAddress(ip), port, protocol },
    key,
  );
  return key;
}

const isV4 = (addr: Buffer, at = 0): boolean => {
  for (let i = 0; i < 10; i++) if (addr[at + i] !== 0) return false;
  return addr[at + 10] === 0xff && addr[at + 11] === 0xff;
};

/** The 16-byte address at `at` of a record (IPv4 mapped) and a port. */
const addressAt = (raw: Buffer, at: number, port: number): SocketAddress => ({
  ip: formatAddress(raw, isV4(raw, at) ? 4 : 6, at),
  port,
});

/** The inner map of tbl_redirects: redirect index -> where it sends connections. */
export function redirectsMap(
  targets: readonly (SocketAddress & {
    unavailable?: "block" | "allow";
    quiet?: boolean;
    layer7Only?: boolean;
    everyNetns?: boolean;
  })[],
): BpfMap {
  const n = Math.max(targets.length, 1);
  const map = createMap("moat_redirects", MAP_ARRAY, 4, redirectCodec.size, n, BPF_F_INNER_MAP);
  const keys = Buffer.alloc(4 * targets.length);
  const values = Buffer.alloc(redirectCodec.size * targets.length);
  targets.forEach((t, i) => {
    keys.writeUInt32LE(i, 4 * i);
    const addr = mappedAddress(t.ip);
    redirectCodec.encode(
      {
        addr,
        port: t.port,
        family: isV4(addr) ? 4 : 6,
        unavailable:
          (t.unavailable === "allow" ? Unavailable.allow : Unavailable.block) |
          (t.quiet ? RedirectFlag.quiet : 0) |
          (t.layer7Only ? RedirectFlag.layer7 : 0) |
          (t.everyNetns ? RedirectFlag.netns : 0),
      },
      values,
      i * redirectCodec.size,
    );
  });
  if (targets.length > 0) fill(map, keys, values, targets.length);
  return map;
}

export class RedirectMaps {
  private readonly targets: BpfMap;
  private readonly exempt: BpfMap;
  private readonly originals: BpfMap;
  private readonly netnsTargets: BpfMap;
  private live = new Set<string>();
  /** exemptProcess's key, removed at close: the pid outlives this daemon */
  private exempted: Buffer | null = null;
  /** originalOf's lookups land here: every field is copied out before the next one */
  private readonly original: Buffer;
  /** originalOf's keys, written in place: by the client's address, by its port alone */
  private readonly byAddress = Buffer.alloc(clientCodec.size);
  private readonly byPort = Buffer.alloc(clientCodec.size);
  /**
   * The record originalOf read last, per protocol, and what it said. The record is read from the
   * kernel every time; only when its bytes are the same is it not decoded again.
   */
  private readonly decoded: Record<
    "tcp" | "udp",
    { raw: Buffer; said: OriginalDestination | null }
  >;

  constructor(object: BpfObject) {
    this.targets = object.map("redirect_targets");
    this.exempt = object.map("redirect_exempt");
    this.originals = object.map("originals");
    this.original = Buffer.alloc(this.originals.valueBufferSize);
    const unread = () => ({ raw: Buffer.alloc(this.original.length), said: null });
    this.decoded = { tcp: unread(), udp: unread() };
    this.netnsTargets = object.map("netns_targets");
    // targets a previous daemon wrote into an adopted map: dropped by the first setTargets()
    for (let k = this.targets.nextKey(null); k; k = this.targets.nextKey(k))
      this.live.add(k.toString("hex"));
    // a loopback target means this namespace's loopback: only its own clients are sent there
    const home = Buffer.alloc(8);
    home.writeBigUInt64LE(native().netnsCookie());
    const homeNetns = object.map("home_netns");
    try {
      homeNetns.update(Buffer.alloc(4), home);
    } finally {
      homeNetns.close();
    }
  }

  /**
   * Adds every endpoint (tcp and udp, and with an all-zero address for a process that binds the
   * port on any address) to the targets; returns a function that removes the previous ones.
   */
  setTargets(endpoints: readonly SocketAddress[]): () => void {
    const next = new Set<string>();
    for (const e of endpoints) {
      for (const protocol of Object.values(PROTOCOL)) {
        next.add(endpointKey(e.ip, e.port, protocol).toString("hex"));
        next.add(endpointKey(null, e.port, protocol).toString("hex"));
      }
    }
    const one = Buffer.from([1]);
    for (const k of next) if (!this.live.has(k)) this.targets.update(Buffer.from(k, "hex"), one);
    const stale = [...this.live].filter((k) => !next.has(k));
    this.live = next;
    return () => {
      for (const k of stale) this.targets.delete(Buffer.from(k, "hex"));
    };
  }

  /**
   * The ports of the DNS proxy's sockets on 127.0.0.1 in the network namespace `cookie` (null:
   * none any more); the DNS redirect sends that namespace's queries there.
   */
  setNetnsPorts(cookie: bigint, ports: { udp: number; tcp: number } | null): void {
    const key = Buffer.alloc(8);
    key.writeBigUInt64LE(cookie);
    if (!ports) {
      this.netnsTargets.delete(key);
      return;
    }
    const value = Buffer.alloc(netnsPortsCodec.size);
    netnsPortsCodec.encode(ports, value);
    this.netnsTargets.update(key, value);
  }

  /**
   * The daemon's own process, whose connections (its relays' and DNS proxy's upstreams) are never
   * redirected. The only entry: a previous daemon's pid may belong to any process by now.
   */
  exemptProcess(pid: number): void {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(pid);
    const others: Buffer[] = [];
    for (let k = this.exempt.nextKey(null); k; k = this.exempt.nextKey(k))
      if (!k.equals(key)) others.push(k);
    for (const k of others) this.exempt.delete(k);
    this.exempt.update(key, Buffer.from([1]));
    this.exempted = key;
  }

  /**
   * The original destination of the redirected client `peer` (the address the proxy sees): by
   * its exact address, else by its port alone (a udp socket bound to no address). `netns`: the
   * cookie of the network namespace the proxy's socket is in when it is not moat's (0n): the
   * DNS proxy's sockets on a container's loopback, whose clients' ports are that namespace's.
   */
  originalOf(peer: SocketAddress, protocol: "tcp" | "udp", netns = 0n): OriginalDestination | null {
    const p = PROTOCOL[protocol];
    const raw = this.original;
    // the keys the kernel writes, without three new buffers per query
    const E = clientCodec.fields;
    const exact = this.byAddress;
    writeMappedAddress(peer.ip, exact, E.addr.offset);
    exact.writeUInt16LE(peer.port, E.port.offset);
    exact[E.protocol.offset] = p;
    exact.writeBigUInt64LE(netns, E.netns.offset);
    const any = this.byPort;
    any.writeUInt16LE(peer.port, E.port.offset);
    any[E.protocol.offset] = p;
    any.writeBigUInt64LE(netns, E.netns.offset);
    const found = this.originals.lookupInto(exact, raw) || this.originals.lookupInto(any, raw);
    if (!found) return null;
    // the same record as the last one read (a DNS client's next query): what it said then
    const last = this.decoded[protocol];
    if (last.said && raw.equals(last.raw)) return last.said;
    // read in place (the DNS proxy does this per query)
    const O = originalCodec.fields;
    const target = O.target.offset;
    const T = redirectCodec.fields;
    const owner = decodeOwner(raw.subarray(O.owner.offset, O.owner.offset + ownerCodec.size));
    // frozen: it is handed out again for the same record
    const said: OriginalDestination = Object.freeze({
      original: Object.freeze(addressAt(raw, O.addr.offset, raw.readUInt16LE(O.port.offset))),
      protocol,
      redirect: raw.readUInt32LE(O.redirect.offset),
      generation: raw.readUInt32LE(O.generation.offset),
      target: Object.freeze(
        addressAt(raw, target + T.addr.offset, raw.readUInt16LE(target + T.port.offset)),
      ),
      owner: owner && Object.freeze(owner),
    });
    raw.copy(last.raw);
    last.said = said;
    return said;
  }

  close(): void {
    if (this.exempted) this.exempt.delete(this.exempted);
    for (const m of [this.targets, this.exempt, this.originals, this.netnsTargets]) m.close();
  }
}
