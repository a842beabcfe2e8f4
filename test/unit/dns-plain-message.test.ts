// The plain DNS messages the proxy reads without dns-packet read the same as dns-packet reads
// them: the query's id, name and type; the answer's id, rcode, TC bit and A/CNAME records (and
// so the names and addresses the proxy binds). Every other message (and every mangled one) is left
// to dns-packet (AAAA, SOA, an rcode past REFUSED, EDNS, a name of other bytes). Checked on
// well-formed messages and on random corruptions of them.
import { test } from "node:test";
import assert from "node:assert/strict";
import dnsPacket from "dns-packet";
import { readAnswer, readQuery, readReply } from "../../src/dns/answer.ts";
import { plainAnswer, plainQuery } from "../../src/dns/plain-message.ts";

type Decoded = ReturnType<typeof dnsPacket.decode> & { rcode?: string; flag_tc?: boolean };

function decoded(buf: Buffer): Decoded | null {
  try {
    return dnsPacket.decode(buf) as Decoded;
  } catch {
    return null;
  }
}

const a = (name: string, data: string, ttl = 60): dnsPacket.Answer => ({
  type: "A",
  name,
  ttl,
  data,
});
const cname = (name: string, data: string): dnsPacket.Answer => ({
  type: "CNAME",
  name,
  ttl: 30,
  data,
});

/** A one-question query asking type `type` (dns-packet's encoder knows no HTTPS). */
function withType(query: Buffer, type: number): Buffer {
  query.writeUInt16BE(type, query.length - 4);
  return query;
}

const queries: Buffer[] = [
  dnsPacket.encode({ type: "query", id: 1, questions: [{ type: "A", name: "h1.bench.test" }] }),
  dnsPacket.encode({
    type: "query",
    id: 65535,
    questions: [{ type: "AAAA", name: "Www.X_y-Z.org" }],
  }),
  withType(dnsPacket.encode({ type: "query", id: 7, questions: [{ type: "A", name: "a.b" }] }), 65),
  dnsPacket.encode({ type: "query", id: 8, questions: [{ type: "NAPTR", name: "a.b" }] }),
  dnsPacket.encode({
    type: "query",
    id: 9,
    questions: [{ type: "A", name: "edns.example" }],
    additionals: [
      {
        type: "OPT",
        name: ".",
        udpPayloadSize: 1232,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: 0,
        flag_do: false,
        options: [],
      },
    ],
  }),
  dnsPacket.encode({ type: "query", id: 10, questions: [{ type: "A", name: "ünï.example" }] }),
];

const answers: Buffer[] = [
  dnsPacket.encode({
    type: "response",
    id: 1,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: "A", name: "h1.bench.test" }],
    answers: [a("h1.bench.test", "10.240.0.2", 300)],
  }),
  dnsPacket.encode({
    type: "response",
    id: 2,
    questions: [{ type: "A", name: "www.moat.test" }],
    answers: [
      cname("www.moat.test", "edge.moat.test"),
      cname("edge.moat.test", "last.cdn.example"),
      a("last.cdn.example", "10.9.0.2"),
      a("last.cdn.example", "10.9.0.3"),
    ],
  }),
  dnsPacket.encode({
    type: "response",
    id: 3,
    flags: dnsPacket.TRUNCATED_RESPONSE | 3,
    questions: [{ type: "A", name: "gone.example" }],
  }),
  dnsPacket.encode({
    type: "response",
    id: 4,
    questions: [{ type: "AAAA", name: "v6.example" }],
    answers: [{ type: "AAAA", name: "v6.example", ttl: 5, data: "2001:db8::1" }],
  }),
  dnsPacket.encode({
    type: "response",
    id: 5,
    questions: [{ type: "A", name: "soa.example" }],
    authorities: [
      {
        type: "SOA",
        name: "example",
        ttl: 5,
        data: {
          mname: "ns.example",
          rname: "h.example",
          serial: 1,
          refresh: 1,
          retry: 1,
          expire: 1,
          minimum: 1,
        },
      },
    ],
  }),
  dnsPacket.encode({
    type: "response",
    id: 6,
    flags: 11,
    questions: [{ type: "A", name: "rcode.example" }],
  }),
];

/** Deterministic corruptions: a byte changed, the message cut short. */
function* mangled(buf: Buffer, seed: number): Generator<Buffer> {
  let x = seed;
  const next = () => (x = (x * 1103515245 + 12345) & 0x7fffffff);
  for (let i = 0; i < 300; i++) {
    const copy = Buffer.from(buf);
    copy[next() % copy.length] = next() & 0xff;
    if (i % 3 === 0) copy[next() % copy.length] = next() & 0xff;
    yield i % 5 === 0 ? copy.subarray(0, next() % copy.length) : copy;
  }
}

function checkQuery(buf: Buffer): void {
  const plain = plainQuery(buf);
  if (!plain) return;
  const m = decoded(buf);
  assert.ok(m, `dns-packet reads a plain query ${buf.toString("hex")}`);
  assert.equal(m.type, "query");
  assert.equal(m.id, plain.id);
  assert.equal(m.questions?.length, 1);
  assert.equal(m.questions?.[0]?.name, plain.name);
  assert.equal(m.questions?.[0]?.type, plain.type);
  assert.equal((m.answers?.length ?? 0) + (m.additionals?.length ?? 0), 0);
}

function checkAnswer(buf: Buffer, qname: string): void {
  const plain = plainAnswer(buf);
  const m = decoded(buf);
  if (plain) {
    assert.ok(m, `dns-packet reads a plain answer ${buf.toString("hex")}`);
    assert.equal(m.type, "response");
    assert.equal(m.id, plain.id);
    assert.equal(m.rcode, plain.rcode);
    assert.equal(!!m.flag_tc, plain.truncated);
    assert.deepEqual(
      (m.answers ?? []).map((r) => [
        r.name,
        r.type,
        "ttl" in r ? r.ttl : 0,
        "data" in r ? r.data : null,
      ]),
      plain.answers.map((r) => [r.name, r.type, r.ttl, r.data]),
    );
  }
  // what the proxy learns is the same whichever way it was read
  assert.deepEqual(readReply(buf, qname).answer, readAnswer(buf, qname));
}

test("plain queries read as dns-packet reads them; the others are left to it", () => {
  let plain = 0;
  for (const q of queries) {
    checkQuery(q);
    if (plainQuery(q)) plain++;
  }
  assert.equal(plain, 3, "A, AAAA and HTTPS questions of plain names, without EDNS");
  assert.equal(plainQuery(queries[3] ?? Buffer.alloc(0)), null, "a type it has no name for");
  assert.equal(plainQuery(queries[4] ?? Buffer.alloc(0)), null, "EDNS: dns-packet reads the size");
  assert.deepEqual(readQuery(queries[1] ?? Buffer.alloc(0)), {
    id: 65535,
    name: "www.x_y-z.org",
    type: "AAAA",
    udpLimit: 512,
  });
  assert.equal(readQuery(queries[2] ?? Buffer.alloc(0))?.type, "HTTPS");
  assert.equal(readQuery(queries[5] ?? Buffer.alloc(0))?.name, "ünï.example", "read by dns-packet");
  queries.forEach((q, i) => {
    for (const m of mangled(q, i + 1)) checkQuery(m);
  });
});

test("plain answers read as dns-packet reads them, names and addresses alike", () => {
  const qnames = [
    "h1.bench.test",
    "www.moat.test",
    "gone.example",
    "v6.example",
    "soa.example",
    "rcode.example",
  ];
  assert.deepEqual(
    answers.map((b) => plainAnswer(b) !== null),
    [true, true, true, false, false, false],
  );
  assert.deepEqual(readReply(answers[1] ?? Buffer.alloc(0), "www.moat.test").answer?.names, [
    "www.moat.test",
    "edge.moat.test",
    "last.cdn.example",
  ]);
  answers.forEach((b, i) => {
    const qname = qnames[i] ?? "";
    checkAnswer(b, qname);
    for (const m of mangled(b, i + 100)) checkAnswer(m, qname);
  });
});
