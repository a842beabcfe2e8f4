// A small packet builder for BPF_PROG_TEST_RUN fixtures: Ethernet (+ up to N VLAN tags) + IPv4
// (options, fragments) or IPv6 (extension headers, fragments) + TCP / UDP / ICMP / ICMPv6 or any
// protocol, with correct checksums. Malformed packets are made by editing the result.
import { parseAddress } from "../../src/datapath/address.ts";

export type Proto = "tcp" | "udp" | "icmp" | "icmpv6" | number;

export interface Ipv6Ext {
  /** hop-by-hop (0), routing (43), destination options (60), authentication (51) */
  type: 0 | 43 | 51 | 60;
  /** total header length in bytes (multiple of 8; AH: multiple of 4, >= 12) */
  length?: number;
}

export interface PacketSpec {
  src: string;
  dst: string;
  proto: Proto;
  sport?: number;
  dport?: number;
  /** TCP flags as letters: S A F R P U, e.g. "S", "SA", "A", "FA", "R". Default "S". */
  flags?: string;
  /** TCP options (padded with end-of-options to 4 bytes). */
  tcpOptions?: Buffer;
  seq?: number;
  ack?: number;
  icmp?: { type: number; code?: number; id?: number; seq?: number };
  /** Bytes after the L4 header (or after the IP header when there is none). */
  payload?: Buffer | number;
  /** VLAN ids, outermost first (802.1Q). */
  vlans?: number[];
  /** IPv4 options (padded to 4 bytes). */
  ipOptions?: Buffer;
  /** IPv6 extension headers before the fragment header / L4. */
  ext?: Ipv6Ext[];
  /** A fragment: offset in 8-byte units, more fragments, id. offset > 0 carries only payload. */
  frag?: { offset: number; more: boolean; id: number };
  ttl?: number;
  /** IPv4: the don't-fragment bit. */
  df?: boolean;
  /** Omit the Ethernet header (an embedded packet for ICMP errors). */
  l3Only?: boolean;
}

const PROTO_NUMBERS: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58 };

export function protoNumber(p: Proto): number {
  return typeof p === "number" ? p : (PROTO_NUMBERS[p] ?? 0);
}

/** Internet checksum (one's complement of the one's-complement sum). */
export function checksum(...parts: Buffer[]): number {
  let sum = 0;
  let odd: number | null = null;
  for (const part of parts) {
    for (const byte of part) {
      if (odd === null) odd = byte;
      else {
        sum += (odd << 8) | byte;
        odd = null;
      }
    }
  }
  if (odd !== null) sum += odd << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function pseudoHeader(src: Buffer, dst: Buffer, proto: number, length: number): Buffer {
  if (src.length === 4) {
    const p = Buffer.alloc(12);
    src.copy(p, 0);
    dst.copy(p, 4);
    p[9] = proto;
    p.writeUInt16BE(length, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  src.copy(p, 0);
  dst.copy(p, 16);
  p.writeUInt32BE(length, 32);
  p[39] = proto;
  return p;
}

function tcpFlags(letters: string): number {
  const bits: Record<string, number> = { F: 1, S: 2, R: 4, P: 8, A: 16, U: 32 };
  let v = 0;
  for (const l of letters) v |= bits[l] ?? 0;
  return v;
}

function payloadOf(spec: PacketSpec): Buffer {
  const p = spec.payload ?? 0;
  return typeof p === "number" ? Buffer.alloc(p, 0x61) : p;
}

/** The L4 header + payload, checksummed against the pseudo header. */
function l4(spec: PacketSpec, src: Buffer, dst: Buffer): Buffer {
  const proto = protoNumber(spec.proto);
  const payload = payloadOf(spec);
  let hdr: Buffer;
  let csumAt = -1;
  if (proto === 6) {
    const opts = spec.tcpOptions ?? Buffer.alloc(0);
    const optLen = Math.ceil(opts.length / 4) * 4;
    hdr = Buffer.alloc(20 + optLen);
    opts.copy(hdr, 20);
    hdr.writeUInt16BE(spec.sport ?? 40000, 0);
    hdr.writeUInt16BE(spec.dport ?? 80, 2);
    hdr.writeUInt32BE((spec.seq ?? 1000) >>> 0, 4);
    hdr.writeUInt32BE((spec.ack ?? 0) >>> 0, 8);
    hdr[12] = ((20 + optLen) / 4) << 4;
    hdr[13] = tcpFlags(spec.flags ?? "S");
    hdr.writeUInt16BE(65535, 14);
    csumAt = 16;
  } else if (proto === 17) {
    hdr = Buffer.alloc(8);
    hdr.writeUInt16BE(spec.sport ?? 40000, 0);
    hdr.writeUInt16BE(spec.dport ?? 53, 2);
    hdr.writeUInt16BE(8 + payload.length, 4);
    csumAt = 6;
  } else if (proto === 1 || proto === 58) {
    const icmp = spec.icmp ?? { type: proto === 1 ? 8 : 128 };
    hdr = Buffer.alloc(8);
    hdr[0] = icmp.type;
    hdr[1] = icmp.code ?? 0;
    hdr.writeUInt16BE(icmp.id ?? 0x1234, 4);
    hdr.writeUInt16BE(icmp.seq ?? 1, 6);
    csumAt = 2;
  } else {
    return payload;
  }
  const seg = Buffer.concat([hdr, payload]);
  if (proto === 1) seg.writeUInt16BE(checksum(seg), csumAt);
  else {
    let c = checksum(pseudoHeader(src, dst, proto, seg.length), seg);
    if (proto === 17 && c === 0) c = 0xffff;
    seg.writeUInt16BE(c, csumAt);
  }
  return seg;
}

function ipv4(spec: PacketSpec, src: Buffer, dst: Buffer): Buffer {
  const proto = protoNumber(spec.proto);
  const opts = spec.ipOptions ?? Buffer.alloc(0);
  const optLen = Math.ceil(opts.length / 4) * 4;
  const body = spec.frag && spec.frag.offset > 0 ? payloadOf(spec) : l4(spec, src, dst);
  const h = Buffer.alloc(20 + optLen);
  h[0] = 0x40 | ((20 + optLen) / 4);
  h.writeUInt16BE(h.length + body.length, 2);
  h.writeUInt16BE(spec.frag?.id ?? 0x4242, 4);
  const frag = spec.frag ? (spec.frag.more ? 0x2000 : 0) | spec.frag.offset : 0;
  h.writeUInt16BE((spec.df ? 0x4000 : 0) | frag, 6);
  h[8] = spec.ttl ?? 64;
  h[9] = proto;
  src.copy(h, 12);
  dst.copy(h, 16);
  opts.copy(h, 20);
  h.writeUInt16BE(checksum(h), 10);
  return Buffer.concat([h, body]);
}

function ipv6(spec: PacketSpec, src: Buffer, dst: Buffer): Buffer {
  const proto = protoNumber(spec.proto);
  const body = spec.frag && spec.frag.offset > 0 ? payloadOf(spec) : l4(spec, src, dst);
  const headers: { type: number; bytes: Buffer }[] = [];
  for (const e of spec.ext ?? []) {
    const len = e.length ?? 8;
    const b = Buffer.alloc(len);
    b[1] = e.type === 51 ? len / 4 - 2 : len / 8 - 1;
    if (e.type === 60 || e.type === 0) {
      // a PadN option filling the header
      b[2] = 1;
      b[3] = len - 4;
    }
    headers.push({ type: e.type, bytes: b });
  }
  if (spec.frag) {
    const b = Buffer.alloc(8);
    b.writeUInt16BE((spec.frag.offset << 3) | (spec.frag.more ? 1 : 0), 2);
    b.writeUInt32BE(spec.frag.id, 4);
    headers.push({ type: 44, bytes: b });
  }
  // chain the next-header fields
  for (let i = 0; i < headers.length; i++) {
    headers[i]!.bytes[0] = headers[i + 1]?.type ?? proto;
  }
  const ext = Buffer.concat(headers.map((h) => h.bytes));
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(ext.length + body.length, 4);
  h[6] = headers[0]?.type ?? proto;
  h[7] = spec.ttl ?? 64;
  src.copy(h, 8);
  dst.copy(h, 24);
  return Buffer.concat([h, ext, body]);
}

/** The frame (or, with l3Only, the IP packet) described by `spec`. */
export function packet(spec: PacketSpec): Buffer {
  const src = parseAddress(spec.src);
  const dst = parseAddress(spec.dst);
  if (src.length !== dst.length) throw new Error(`mixed families: ${spec.src} ${spec.dst}`);
  const l3 = src.length === 4 ? ipv4(spec, src, dst) : ipv6(spec, src, dst);
  if (spec.l3Only) return l3;
  const vlans = spec.vlans ?? [];
  const eth = Buffer.alloc(14 + 4 * vlans.length);
  Buffer.from([2, 0, 0, 0, 0, 2]).copy(eth, 0);
  Buffer.from([2, 0, 0, 0, 0, 1]).copy(eth, 6);
  let at = 12;
  for (const id of vlans) {
    eth.writeUInt16BE(0x8100, at);
    eth.writeUInt16BE(id & 0xfff, at + 2);
    at += 4;
  }
  eth.writeUInt16BE(src.length === 4 ? 0x0800 : 0x86dd, at);
  return Buffer.concat([eth, l3]);
}

/** An ARP request frame (non-IP). */
export function arpFrame(): Buffer {
  const f = Buffer.alloc(42);
  f.fill(0xff, 0, 6);
  Buffer.from([2, 0, 0, 0, 0, 1]).copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14);
  f.writeUInt16BE(0x0800, 16);
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20);
  return f;
}

/** Byte offset of the IP header in a frame built without VLAN tags. */
export const L3 = 14;

/** Verifies the checksums of a frame's IP and L4 headers (no VLAN, no extension headers). */
export function checksumsOk(frame: Buffer): boolean {
  const type = frame.readUInt16BE(12);
  if (type === 0x0800) {
    const ihl = (frame[L3]! & 0xf) * 4;
    const ip = frame.subarray(L3, L3 + ihl);
    if (checksum(ip) !== 0) return false;
    const total = frame.readUInt16BE(L3 + 2);
    const seg = frame.subarray(L3 + ihl, L3 + total);
    const proto = frame[L3 + 9]!;
    if (proto === 1) return checksum(seg) === 0;
    const ph = pseudoHeader(
      frame.subarray(L3 + 12, L3 + 16),
      frame.subarray(L3 + 16, L3 + 20),
      proto,
      seg.length,
    );
    return checksum(ph, seg) === 0;
  }
  const len = frame.readUInt16BE(L3 + 4);
  const seg = frame.subarray(L3 + 40, L3 + 40 + len);
  const ph = pseudoHeader(
    frame.subarray(L3 + 8, L3 + 24),
    frame.subarray(L3 + 24, L3 + 40),
    frame[L3 + 6]!,
    seg.length,
  );
  return checksum(ph, seg) === 0;
}

/** Segments of a TCP connection from `remote`:sport to `local`:`port`: the remote's (`peer`) and
 * the local host's answers (`host`). */
export function tcpEnds(remote: string, local: string, port: number) {
  type Segment = (sport: number, flags: string, extra?: Partial<PacketSpec>) => PacketSpec;
  const peer: Segment = (sport, flags, extra = {}) => ({
    src: remote,
    dst: local,
    proto: "tcp",
    sport,
    dport: port,
    flags,
    ...extra,
  });
  const host: Segment = (sport, flags, extra = {}) => ({
    src: local,
    dst: remote,
    proto: "tcp",
    sport: port,
    dport: sport,
    flags,
    ...extra,
  });
  return { peer, host };
}
