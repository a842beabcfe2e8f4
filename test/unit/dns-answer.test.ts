// DNS messages as the proxy reads and writes them (built and read back with dns-packet): the
// query's name, type and UDP limit; an answer's CNAME chain and addresses; REFUSED/SERVFAIL of
// moat's own; an answer too big for the client's UDP limit sent truncated (TC, no records);
// HTTPS/SVCB address hints stripped, other params kept.
import { test } from "node:test";
import assert from "node:assert/strict";
import dnsPacket from "dns-packet";
import { errorAnswer, fitUdp, readAnswer, readQuery, stripHints } from "../../src/dns/answer.ts";

/** An EDNS record announcing `size` (dns-packet's types want every OPT field). */
const opt = (size: number): dnsPacket.Answer => ({
  type: "OPT",
  name: ".",
  udpPayloadSize: size,
  extendedRcode: 0,
  ednsVersion: 0,
  flags: 0,
  flag_do: false,
  options: [],
});

const query = (name: string, type: "A" | "AAAA" = "A", ednsSize?: number) =>
  dnsPacket.encode({
    type: "query",
    id: 4242,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
    additionals: ednsSize ? [opt(ednsSize)] : [],
  });

const response = (answers: dnsPacket.Answer[], over: Partial<dnsPacket.Packet> = {}) =>
  dnsPacket.encode({
    type: "response",
    id: 4242,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [{ type: "A", name: "www.github.com" }],
    answers,
    ...over,
  });

test("a query's name, type, and the answer size its client takes over UDP", () => {
  assert.deepEqual(readQuery(query("GitHub.com.")), {
    id: 4242,
    name: "github.com",
    type: "A",
    udpLimit: 512,
    questions: 1,
  });
  assert.equal(readQuery(query("github.com", "AAAA", 1232))?.udpLimit, 1232);
  assert.equal(readQuery(query("github.com", "A", 100))?.udpLimit, 512, "never under 512");
  assert.equal(
    readQuery(query("github.com", "A", 65_535))?.udpLimit,
    65_507,
    "never over what one IPv4 datagram carries: a larger answer is sent truncated, not dropped",
  );
  assert.equal(readQuery(Buffer.from("not dns")), null);
  assert.equal(readQuery(response([])), null, "an answer is no query");
});

test("a query of two questions, or none, is read from its header and first name only", () => {
  const asked = (names: string[]) =>
    readQuery(
      dnsPacket.encode({
        type: "query",
        id: 9,
        questions: names.map((name) => ({ type: "A" as const, name })),
      }),
    );
  assert.deepEqual(asked(["X.ads.example.", "a.example"]), {
    id: 9,
    name: "x.ads.example",
    type: "",
    udpLimit: 512,
    questions: 2,
  });
  assert.deepEqual(asked([]), { id: 9, name: "", type: "", udpLimit: 512, questions: 0 });
  // what follows the first name is never read: bytes that are no question at all
  const header = Buffer.from([0, 9, 1, 0, 0, 3, 0, 0, 0, 0, 0, 0]);
  const name = Buffer.from([1, 0x61, 0]);
  assert.deepEqual(readQuery(Buffer.concat([header, name, Buffer.from([0xff, 0xff])])), {
    id: 9,
    name: "a",
    type: "",
    udpLimit: 512,
    questions: 3,
  });
  const formerr = dnsPacket.decode(
    errorAnswer(dnsPacket.encode({ type: "query", id: 9, questions: [] }), "FORMERR"),
  ) as dnsPacket.DecodedPacket & { rcode: string };
  assert.equal(formerr.rcode, "FORMERR");
});

test("moat's own answer to a query of other than one question is its header alone", () => {
  const two = dnsPacket.encode({
    type: "query",
    id: 0x4321,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [
      { type: "A", name: "a.example" },
      { type: "A", name: "b.example" },
    ],
  });
  for (const rcode of ["FORMERR", "REFUSED", "SERVFAIL"] as const) {
    const out = errorAnswer(two, rcode);
    assert.equal(out.length, 12);
    const d = dnsPacket.decode(out) as dnsPacket.DecodedPacket & { rcode: string };
    assert.deepEqual(
      [d.id, d.type, d.rcode, d.flag_rd, d.questions?.length],
      [0x4321, "response", rcode, true, 0],
    );
  }
});

test("an answer's names are the query and its CNAME chain; its addresses those of the chain", () => {
  const a = readAnswer(
    response([
      { type: "CNAME", name: "www.github.com", ttl: 300, data: "github.com" },
      { type: "CNAME", name: "github.com", ttl: 300, data: "lb.github.net" },
      { type: "A", name: "lb.github.net", ttl: 60, data: "140.82.112.3" },
      { type: "AAAA", name: "lb.github.net", ttl: 30, data: "2606:50c0::1" },
      { type: "A", name: "unrelated.example", ttl: 60, data: "192.0.2.1" },
    ]),
    "www.github.com",
  );
  assert.deepEqual(a, {
    id: 4242,
    rcode: "NOERROR",
    truncated: false,
    names: ["www.github.com", "github.com", "lb.github.net"],
    addresses: [
      { ip: "140.82.112.3", ttlSeconds: 60, ownerIndex: 2 },
      { ip: "2606:50c0::1", ttlSeconds: 30, ownerIndex: 2 },
    ],
    summary: ["140.82.112.3", "2606:50c0::1"],
  });
});

test("each address carries where its record's owner stands in the chain (its names: up to there)", () => {
  const read = (qname: string, answers: dnsPacket.Answer[]) =>
    readAnswer(response(answers, { questions: [{ type: "A", name: qname }] }), qname);
  const spoofed = read("attacker.example", [
    { type: "CNAME", name: "attacker.example", ttl: 60, data: "allowed.example" },
    { type: "A", name: "Attacker.Example.", ttl: 60, data: "203.0.113.66" },
  ]);
  assert.deepEqual(spoofed?.names, ["attacker.example", "allowed.example"]);
  assert.deepEqual(spoofed?.addresses, [{ ip: "203.0.113.66", ttlSeconds: 60, ownerIndex: 0 }]);
  const middle = read("one.example", [
    { type: "A", name: "three.example", ttl: 9, data: "192.0.2.21" },
    { type: "CNAME", name: "one.example", ttl: 60, data: "two.example" },
    { type: "CNAME", name: "two.example", ttl: 60, data: "three.example" },
    { type: "A", name: "two.example", ttl: 9, data: "192.0.2.20" },
  ]);
  assert.deepEqual(middle?.addresses, [
    { ip: "192.0.2.21", ttlSeconds: 9, ownerIndex: 2 },
    { ip: "192.0.2.20", ttlSeconds: 9, ownerIndex: 1 },
  ]);
  const plain = read("plain.example", [
    { type: "A", name: "plain.example", ttl: 9, data: "192.0.2.1" },
    { type: "A", name: "other.example", ttl: 9, data: "192.0.2.2" },
  ]);
  assert.deepEqual(plain?.addresses, [{ ip: "192.0.2.1", ttlSeconds: 9, ownerIndex: 0 }]);
});

test("a CNAME loop ends the chain; NXDOMAIN has no addresses", () => {
  const loop = readAnswer(
    response([
      { type: "CNAME", name: "www.github.com", ttl: 1, data: "b.example" },
      { type: "CNAME", name: "b.example", ttl: 1, data: "www.github.com" },
    ]),
    "www.github.com",
  );
  assert.deepEqual(loop?.names, ["www.github.com", "b.example"]);
  const nx = readAnswer(response([], { flags: 3 }), "www.github.com");
  assert.equal(nx?.rcode, "NXDOMAIN");
  assert.deepEqual(nx?.addresses, []);
});

test("moat's own answers: REFUSED and SERVFAIL with the query's id and question", () => {
  for (const rcode of ["REFUSED", "SERVFAIL"] as const) {
    const a = dnsPacket.decode(
      errorAnswer(query("ads.example"), rcode),
    ) as dnsPacket.DecodedPacket & {
      rcode: string;
    };
    assert.equal(a.type, "response");
    assert.equal(a.id, 4242);
    assert.equal(a.rcode, rcode);
    assert.deepEqual(a.questions, [{ name: "ads.example", type: "A", class: "IN" }]);
    assert.equal(a.answers?.length, 0);
  }
});

test("an answer over the client's UDP limit goes out truncated: TC, its question, no records", () => {
  const many = Array.from({ length: 60 }, (_, i) => ({
    type: "A" as const,
    name: "www.github.com",
    ttl: 60,
    data: `10.0.${i >> 8}.${i & 255}`,
  }));
  const big = response(many, {
    additionals: [opt(1232)],
  });
  assert.ok(big.length > 512);
  assert.equal(fitUdp(big, big.length), big, "what fits is sent as is");
  const cut = fitUdp(big, 512);
  assert.ok(cut.length <= 512);
  const m = dnsPacket.decode(cut);
  assert.equal(m.flag_tc, true);
  assert.equal(m.id, 4242);
  assert.equal(m.answers?.length, 0);
  assert.equal(m.questions?.[0]?.name, "www.github.com");
  assert.deepEqual(
    m.additionals?.map((a) => a.type),
    ["OPT"],
    "the EDNS record stays",
  );
});

/** HTTPS RDATA: priority 1, target ".", alpn h2, ipv4hint, port 443, ipv6hint. */
function httpsRdata(): Buffer {
  const param = (key: number, value: Buffer) => {
    const head = Buffer.alloc(4);
    head.writeUInt16BE(key, 0);
    head.writeUInt16BE(value.length, 2);
    return Buffer.concat([head, value]);
  };
  const port = Buffer.alloc(2);
  port.writeUInt16BE(443);
  return Buffer.concat([
    Buffer.from([0, 1, 0]),
    param(1, Buffer.from([2, 0x68, 0x32])),
    param(4, Buffer.from([140, 82, 112, 3])),
    param(3, port),
    param(6, Buffer.alloc(16, 1)),
  ]);
}

test("HTTPS records lose ipv4hint and ipv6hint and keep their other params", () => {
  const a = response([
    { type: "UNKNOWN_65", name: "www.github.com", ttl: 60, data: httpsRdata() } as never,
    { type: "A", name: "www.github.com", ttl: 60, data: "140.82.112.3" },
  ]);
  const out = dnsPacket.decode(stripHints(a));
  const https = out.answers?.[0] as { type: string; data: Buffer };
  assert.equal(https.type, "UNKNOWN_65");
  const keys: number[] = [];
  for (let o = 3; o < https.data.length; o += 4 + https.data.readUInt16BE(o + 2))
    keys.push(https.data.readUInt16BE(o));
  assert.deepEqual(keys, [1, 3], "alpn and port kept, both hints gone");
  assert.equal((out.answers?.[1] as { data: string }).data, "140.82.112.3");
  const plain = response([{ type: "A", name: "www.github.com", ttl: 60, data: "140.82.112.3" }]);
  assert.equal(stripHints(plain), plain, "an answer without hints is passed on byte for byte");
});

test("an HTTPS or SVCB record whose params run past its data is dropped, hints and all", () => {
  // alpn, ipv4hint 6.6.6.6, then a param declaring 9 bytes of which 1 is there
  const overrun = Buffer.concat([
    Buffer.from([0, 1, 0]),
    Buffer.from([0, 4, 0, 4, 6, 6, 6, 6]),
    Buffer.from([0, 7, 0, 9, 1]),
  ]);
  for (const type of ["UNKNOWN_65", "UNKNOWN_64"]) {
    const a = response([
      { type, name: "www.github.com", ttl: 60, data: overrun } as never,
      { type: "A", name: "www.github.com", ttl: 60, data: "140.82.112.3" },
    ]);
    const out = stripHints(a);
    assert.equal(out.includes(Buffer.from([0, 4, 0, 4, 6, 6, 6, 6])), false, "the hint is gone");
    const answers = dnsPacket.decode(out).answers ?? [];
    assert.deepEqual(
      answers.map((r) => r.type),
      ["A"],
      "the record is dropped",
    );
  }
});

test("a message whose record counts its length cannot hold is not a query nor an answer", () => {
  // one question, then 65,535 answers, 65,535 authorities and 16 additionals declared in 30 bytes:
  // decoded, a record running past the end sends the reader back to the start, record after record
  const hostile = Buffer.from(
    "123401000001ffffffffffff016100000100010000100001000000000010",
    "hex",
  );
  assert.equal(readQuery(hostile), null);
  assert.equal(readAnswer(hostile, "a"), null);
  // counts that fit are read as before
  const query = dnsPacket.encode({
    type: "query",
    id: 7,
    questions: [{ type: "A", name: "example.org" }],
  });
  assert.equal(readQuery(query)?.name, "example.org");
});

test("a chain is followed for 16 names at most: an address past them binds nothing", () => {
  const step = (i: number) => `n${i}.example`;
  const answers: dnsPacket.Answer[] = [];
  for (let i = 0; i < 40; i++)
    answers.push({ type: "CNAME", name: step(i), ttl: 60, data: step(i + 1) });
  answers.push({ type: "A", name: step(15), ttl: 60, data: "192.0.2.15" });
  answers.push({ type: "A", name: step(40), ttl: 60, data: "192.0.2.40" });
  const a = readAnswer(response(answers, { questions: [{ type: "A", name: step(0) }] }), step(0));
  assert.equal(a?.names.length, 16);
  assert.equal(a?.names[15], step(15));
  assert.deepEqual(a?.addresses, [{ ip: "192.0.2.15", ttlSeconds: 60, ownerIndex: 15 }]);
});
