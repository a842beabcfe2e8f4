// A DNS label may hold any octet, a dot too (RFC 2181 11): the name of the two labels
// "allowed.moat" and "test" is not allowed.moat.test (three labels), and a server resolves it
// as the other name. moat's DNS proxy on loopback refuses such a query (REFUSED, its question
// echoed byte for byte), refuses an answer whose CNAME chain leads to such a name, and never binds
// an address record owned by one to the name it reads as.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import dnsPacket from "dns-packet";
import { errorAnswer, readQuery } from "../../src/dns/answer.ts";
import { askUdpRaw, proxyToServer } from "../helpers/loopback-dns-proxy.ts";

const POLICY = `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
rules:
  - { name: lookups, direction: egress, action: allow, layer7: { dns: { name: [allowed.moat.test, www.moat.test] } } }
  - { name: to-allowed, direction: egress, action: allow, layer3: { remote: [allowed.moat.test] } }
`;

/** "allowed.moat" and "test": one label with a dot in it, then "test". */
const DOTTED = ["allowed.moat", "test"];
/** How moat writes that name: the dot inside the label as \046. */
const DOTTED_TEXT = "allowed\\046moat.test";
const TYPE_A = 1;
const TYPE_CNAME = 5;
const CLASS_IN = 1;

/** A name's wire bytes, label by label (no compression). */
function wireName(labels: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const l of labels) {
    const b = Buffer.from(l, "latin1");
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);

/** A query (RD set) of one A question for `labels`. */
function rawQuery(id: number, labels: readonly string[]): Buffer {
  const header = Buffer.concat([u16(id), u16(0x0100), u16(1), u16(0), u16(0), u16(0)]);
  return Buffer.concat([header, questionOf(labels)]);
}

const questionOf = (labels: readonly string[]) =>
  Buffer.concat([wireName(labels), u16(TYPE_A), u16(CLASS_IN)]);

/** A resource record of class IN, TTL 60. */
function record(labels: readonly string[], type: number, rdata: Buffer): Buffer {
  const ttl = Buffer.alloc(4);
  ttl.writeUInt32BE(60);
  return Buffer.concat([wireName(labels), u16(type), u16(CLASS_IN), ttl, u16(rdata.length), rdata]);
}

/** The bytes of the question of a message of one question (header, then the question). */
function questionBytes(msg: Buffer): Buffer {
  let at = 12;
  while (msg[at]! !== 0) at += msg[at]! + 1;
  return msg.subarray(12, at + 5);
}

/** A response to `query` (its question echoed as is) with `records` as its answers. */
function response(query: Buffer, records: Buffer[]): Buffer {
  const header = Buffer.concat([
    query.subarray(0, 2),
    u16(0x8180),
    u16(1),
    u16(records.length),
    u16(0),
    u16(0),
  ]);
  return Buffer.concat([header, questionBytes(query), ...records]);
}

const ipv4 = (ip: string) => Buffer.from(ip.split(".").map(Number));

/**
 * The server: www.moat.test is answered with `wwwAnswer`'s records; any other name with an A
 * 192.0.2.7 owned by the name as asked.
 */
function server(wwwAnswer: Buffer[]) {
  return (q: Buffer): Buffer => {
    const name = dnsPacket.decode(q).questions?.[0]?.name ?? "";
    if (name === "www.moat.test") return response(q, wwwAnswer);
    const own = questionBytes(q);
    const labels = wireLabels(own);
    return response(q, [record(labels, TYPE_A, ipv4("192.0.2.7"))]);
  };
}

/** The labels of an uncompressed wire name at the start of `b`. */
function wireLabels(b: Buffer): string[] {
  const labels: string[] = [];
  for (let at = 0; b[at]! !== 0; at += b[at]! + 1)
    labels.push(b.toString("latin1", at + 1, at + 1 + b[at]!));
  return labels;
}

const RCODES: Record<number, string> = { 0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 5: "REFUSED" };
const rcodeOf = (m: Buffer) => RCODES[m[3]! & 0x0f] ?? String(m[3]! & 0x0f);

/** The proxy before `server(wwwAnswer)`; `ask` sends a query's bytes, answers the reply's. */
async function start(t: TestContext, wwwAnswer: Buffer[] = []) {
  const { p, up, port } = await proxyToServer(t, POLICY, server(wwwAnswer));
  return { p, seen: up.seen, ask: (q: Buffer) => askUdpRaw(port, q, { timeoutMs: 3000 }) };
}

test("a query whose label holds a dot is REFUSED, not judged as the dotted-together name", async (t) => {
  const { p, seen, ask } = await start(t);
  const q = rawQuery(11, DOTTED);
  const r = await ask(q);
  assert.equal(rcodeOf(r), "REFUSED");
  assert.deepEqual(
    questionBytes(r),
    questionBytes(q),
    "the question echoed as the client asked it",
  );
  assert.deepEqual(seen, [], "nothing asked upstream");
  assert.deepEqual(p.bound, [], "nothing bound");
  const dns = p.events.find((e) => e.type === "dns");
  assert.equal(dns?.dns?.query, DOTTED_TEXT, "reported with the dot inside its label escaped");
  assert.equal(dns?.dns?.rcode, "REFUSED");
  assert.notEqual(dns?.rule, "lookups", "not judged as allowed.moat.test");
  assert.equal(p.proxy.stats.refused, 1);
});

test("the three-label name is still answered and bound", async (t) => {
  const { p, ask } = await start(t);
  const r = await ask(rawQuery(12, ["allowed", "moat", "test"]));
  assert.equal(rcodeOf(r), "NOERROR");
  assert.deepEqual(
    p.bound.map((b) => b.ip),
    ["192.0.2.7"],
  );
  const dns = p.events.find((e) => e.type === "dns");
  assert.equal(dns?.rule, "lookups");
  assert.deepEqual(dns?.dns?.names, ["allowed.moat.test"]);
});

test("an answer whose CNAME leads to a name with a dot in a label is REFUSED, nothing bound", async (t) => {
  const www = ["www", "moat", "test"];
  const { p, ask } = await start(t, [
    record(www, TYPE_CNAME, wireName(DOTTED)),
    record(DOTTED, TYPE_A, ipv4("192.0.2.8")),
  ]);
  const r = await ask(rawQuery(13, www));
  assert.equal(rcodeOf(r), "REFUSED");
  assert.equal(r.readUInt16BE(6), 0, "no records reach the client");
  assert.deepEqual(p.bound, [], "192.0.2.8 is not bound to allowed.moat.test");
  const dns = p.events.find((e) => e.type === "dns");
  assert.equal(dns?.dns?.query, "www.moat.test");
  assert.equal(dns?.dns?.rcode, "REFUSED");
  assert.equal(p.proxy.stats.refused, 1);
});

test("an address record owned by a name with a dot in a label is not bound to the name asked", async (t) => {
  const { p, ask } = await start(t, [record(["www.moat", "test"], TYPE_A, ipv4("192.0.2.9"))]);
  const r = await ask(rawQuery(14, ["www", "moat", "test"]));
  assert.equal(rcodeOf(r), "NOERROR", "the answer passes, as one for another name would");
  assert.deepEqual(p.bound, [], "192.0.2.9 is not bound to www.moat.test");
  const dns = p.events.find((e) => e.type === "dns");
  assert.deepEqual(dns?.dns?.answers, []);
});

test("moat reads a dot and a backslash inside a label apart, and writes them back as they were", () => {
  const dotted = rawQuery(15, ["a.b", "test"]);
  const slashed = rawQuery(16, ["a\\046b", "test"]);
  assert.equal(readQuery(dotted)?.name, "a\\046b.test");
  assert.equal(readQuery(slashed)?.name, "a\\092046b.test", "not the name with a dot");
  for (const q of [dotted, slashed])
    assert.deepEqual(questionBytes(errorAnswer(q, "REFUSED")), questionBytes(q));
});
