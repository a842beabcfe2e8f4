// moat's DNS proxy on loopback in the test's own process, judging by a policy's text, with a
// recording binder for the kernel's bindings map; the UDP DNS servers it asks; a UDP client.
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import dnsPacket from "dns-packet";
import { checkPolicySource, textOnlyHost } from "../../src/config/index.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";
import {
  DnsProxy,
  policyJudge,
  type DnsOwner,
  trustedResolvers,
  type DnsProxyOptions,
  type NameBinding,
  type QueryJudge,
} from "../../src/dns/index.ts";
import { daemonStandIns } from "./dns-proxy-stand-ins.ts";

export interface LoopbackProxy {
  proxy: DnsProxy;
  /** Every binding the proxy wrote, in order. */
  bound: NameBinding[];
  events: MoatEvent[];
}

export interface LoopbackProxyOptions {
  /** The policy's text (YAML). */
  policy: string;
  original: DnsProxyOptions["original"];
  /** The client's executable, in its process facts. */
  path: string;
  /** The facts a query is judged by, from its own (default: as they are). */
  judged?: (facts: Parameters<QueryJudge>[0]) => Parameters<QueryJudge>[0];
  more?: Partial<DnsProxyOptions>;
}

/** The proxy with `o.policy`: no resolver trusted, every name of class 1, its log dropped. */
export async function openLoopbackProxy(o: LoopbackProxyOptions): Promise<LoopbackProxy> {
  const checked = checkPolicySource(o.policy, "p.yaml", textOnlyHost);
  assert.ok(checked.model, JSON.stringify(checked.diagnostics));
  const model = checked.model;
  const judge = policyJudge(() => model);
  const judged = o.judged;
  const bound: NameBinding[] = [];
  const events: MoatEvent[] = [];
  const proxy = await DnsProxy.open({
    original: o.original,
    binder: {
      bindNames: (b) => {
        bound.push(...b);
        return { written: b.length, full: 0 };
      },
      unbindNames: () => {},
      monotonicNs: () => process.hrtime.bigint(),
    },
    judge: judged ? (facts) => judge(judged(facts)) : judge,
    ...daemonStandIns(o.path),
    report: (e) => events.push(e),
    log: () => {},
    settings: { resolvers: [], minTtlSeconds: 5, graceSeconds: 30, doh: "allow", ech: "keep" },
    trusted: trustedResolvers([], "/nonexistent"),
    ...o.more,
  });
  proxy.setClasses(() => 1);
  return { proxy, bound, events };
}

/** The client of the queries proxyToServer takes: curl, user 1000. */
export const CURL: DnsOwner = {
  pid: 4321,
  uid: 1000,
  cgroupId: 77n,
  comm: "curl",
  exeIno: 1234n,
  exeDev: 1,
};

/**
 * The proxy with `policy` and the UDP server on 127.0.0.1 answering with `answer`, both closed
 * when the test ends: every query is curl's, to that server, judged as one to port 53 (the
 * server listens on an ephemeral port). `port` is the proxy's UDP port.
 */
export async function proxyToServer(
  t: { after(fn: () => void): void },
  policy: string,
  answer: (q: Buffer) => Buffer,
): Promise<{ p: LoopbackProxy; up: UdpUpstream; port: number }> {
  const up = await udpUpstream("127.0.0.1", answer);
  const p = await openLoopbackProxy({
    policy,
    original: () => ({ original: { ip: up.ip, port: up.port }, owner: CURL }),
    path: "/usr/bin/curl",
    judged: (facts) => ({ ...facts, remote: { ...facts.remote, port: 53 } }),
  });
  t.after(() => {
    p.proxy.close();
    up.close();
  });
  return { p, up, port: p.proxy.addresses().udp.port };
}

/** A query (recursion desired) of one A question for `name`. */
export const aQuery = (name: string, id: number): Buffer =>
  dnsPacket.encode({
    id,
    type: "query",
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: "A", name }],
  });

/** The answer a DNS server gives `q`: its questions, each with an A record 192.0.2.7. */
export function aAnswer(q: Buffer, ttl = 60): Buffer {
  const d = dnsPacket.decode(q);
  const answers = (d.questions ?? []).map((x) => ({
    type: "A" as const,
    name: x.name,
    ttl,
    data: "192.0.2.7",
  }));
  return dnsPacket.encode({ id: d.id, type: "response", questions: d.questions, answers });
}

export interface UdpUpstream {
  ip: string;
  port: number;
  /** The names of each query it was asked. */
  seen: string[][];
  /** The ids of the queries it was asked. */
  ids: number[];
  close(): void;
}

/** A UDP DNS server on `ip`: answers each query with `answer(query)`, or never (null). */
export async function udpUpstream(
  ip: string,
  answer: ((q: Buffer) => Buffer) | null,
): Promise<UdpUpstream> {
  const s = createSocket("udp4");
  const seen: string[][] = [];
  const ids: number[] = [];
  s.on("message", (msg, r) => {
    const q = dnsPacket.decode(msg);
    seen.push((q.questions ?? []).map((x) => x.name));
    ids.push(q.id ?? -1);
    if (answer) s.send(answer(msg), r.port, r.address);
  });
  await new Promise<void>((resolve) => s.bind(0, ip, resolve));
  return { ip, port: s.address().port, seen, ids, close: () => s.close() };
}

/** A decoded message with its rcode (dns-packet's type declarations leave it out). */
export type Decoded = dnsPacket.DecodedPacket & { rcode?: string };

export const decoded = (m: Buffer) => dnsPacket.decode(m) as Decoded;

/**
 * One UDP query to the proxy's `port` on 127.0.0.1, from `from` (default: an address the kernel
 * picks); its answer's bytes, or an error after `timeoutMs`.
 */
export function askUdpRaw(
  port: number,
  msg: Buffer,
  o: { timeoutMs: number; from?: string },
): Promise<Buffer> {
  const c = createSocket("udp4");
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      c.close();
      reject(new Error("no answer"));
    }, o.timeoutMs);
    c.on("message", (m) => {
      clearTimeout(timer);
      c.close();
      resolve(m);
    });
    const send = () => c.send(msg, port, "127.0.0.1");
    if (o.from === undefined) send();
    else c.bind(0, o.from, send);
  });
}

/** askUdpRaw's answer, decoded. */
export async function askUdp(
  port: number,
  msg: Buffer,
  o: { timeoutMs: number; from?: string },
): Promise<Decoded> {
  return decoded(await askUdpRaw(port, msg, o));
}
