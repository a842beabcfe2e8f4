// IDS signatures as Suricata 7 reads them: address negations keep to their family, negated
// lists of addresses and ports, the signatures Suricata refuses (an error at FILE:LINE:COL), and
// flow:established / only_stream on UDP.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseSignature } from "../../src/config/ids-signature.ts";
import { checkPolicySource, textOnlyHost } from "../../src/config/parse.ts";
import { IdsMatcher, type IdsStream } from "../../src/policy/ids-match.ts";

const stream = (data: string, over: Partial<IdsStream> = {}): IdsStream => ({
  protocol: "tcp",
  toServer: true,
  sender: { ip: "192.0.2.9", port: 40000 },
  receiver: { ip: "10.0.0.9", port: 80 },
  senderLocal: false,
  data,
  final: true,
  ...over,
});

function matcher(texts: string[]): IdsMatcher {
  return new IdsMatcher(
    texts.map((t) => {
      const p = parseSignature(t);
      assert.ok(p.ok, `${t}: ${JSON.stringify(p.ok ? "" : p.problems)}`);
      return { ...p.signature, text: t, pos: { file: "p", line: 1, col: 1, path: "ids" } };
    }),
  );
}

test("an address negation keeps to its family; an IPv4-mapped address is IPv6 (as Suricata)", () => {
  const m = matcher([
    'alert tcp !10.0.0.1 any -> any any (content:"xyz"; sid:1;)',
    'alert tcp !2001:db8::/32 any -> any any (content:"xyz"; sid:2;)',
    'alert tcp [!10.0.0.1,!2001:db8::/32] any -> any any (content:"xyz"; sid:3;)',
    'alert tcp ::ffff:10.0.0.2 any -> any any (content:"xyz"; sid:4;)',
    'alert tcp [10.0.0.0/8,!10.0.0.1] any -> any any (content:"xyz"; sid:6;)',
    'alert tcp [!10.0.0.1,2001:db8::/32] any -> any any (content:"xyz"; sid:7;)',
    'alert tcp !::ffff:10.0.0.2 any -> any any (content:"xyz"; sid:8;)',
  ]);
  const from = (ip: string) =>
    m.match(stream("xyz", { sender: { ip, port: 40000 } })).map((r) => r.sid);
  // what Suricata 7.0.10 reports for the same signatures on the same flows
  assert.deepEqual(from("2001:db8:1::1"), [7, 8]);
  assert.deepEqual(from("10.0.0.5"), [1, 3, 6, 7]);
  assert.deepEqual(from("10.0.0.1"), []);
  assert.deepEqual(from("10.0.0.2"), [1, 3, 6, 7]);
  assert.deepEqual(from("2001:db8::7"), [7, 8]);
  assert.deepEqual(from("::ffff:10.0.0.2"), [2, 3, 4]);
});

test("negated lists of addresses and ports, alone and in a list (as Suricata)", () => {
  const m = matcher([
    'alert tcp ![10.0.0.1,10.0.0.3] any -> any any (content:"xyz"; sid:5;)',
    'alert tcp any any -> any ![80,443] (content:"xyz"; sid:9;)',
    'alert tcp any any -> any ![81, 443] (content:"xyz"; sid:10;)',
    'alert tcp [10.0.0.0/8, ![10.0.0.1,10.0.0.3]] any -> any [1:100,![80,443]] (content:"xyz"; sid:21;)',
  ]);
  const sids = (ip: string, port: number) =>
    m
      .match(stream("xyz", { sender: { ip, port: 40000 }, receiver: { ip: "10.0.0.9", port } }))
      .map((r) => r.sid);
  assert.deepEqual(sids("10.0.0.5", 80), [5, 10]);
  assert.deepEqual(sids("10.0.0.1", 80), [10]);
  assert.deepEqual(sids("10.0.0.3", 80), [10]);
  assert.deepEqual(sids("2001:db8:1::1", 80), [10]);
  assert.deepEqual(sids("10.0.0.5", 443), [5]);
  assert.deepEqual(sids("10.0.0.5", 99), [5, 9, 10, 21]);
  assert.deepEqual(sids("10.0.0.3", 99), [9, 10]);
  // the entries of a negated list keep their places in the text
  const text = 'alert tcp ![10.0.0.1, 10.0.0.256] any -> any any (content:"x"; sid:1;)';
  const bad = parseSignature(text);
  assert.ok(!bad.ok);
  assert.equal(text.slice(bad.problems[0]!.at).split("]")[0], "10.0.0.256");
});

test("lists within lists: read to 8 deep, deeper is malformed, never a stack overflow", () => {
  const nested = (n: number) => `${"[".repeat(n)}10.0.0.1${"]".repeat(n)}`;
  assert.ok(parseSignature(`alert tcp ${nested(8)} any -> any any (content:"x"; sid:1;)`).ok);
  for (const n of [9, 100_000]) {
    const p = parseSignature(`alert tcp ${nested(n)} any -> any any (content:"x"; sid:1;)`);
    assert.ok(!p.ok);
    assert.match(p.problems[0]!.message, /lists nested more than 8 deep/);
  }
});

test("signatures Suricata refuses are errors at the keyword that makes them so", () => {
  const refused: [string, string, RegExp][] = [
    [
      'alert tcp any any -> any 80 (content:"GET"; content:"x"; distance:1; depth:5; sid:1;)',
      "depth:5",
      /'depth' is from the start of the bytes, 'distance' after the previous content: a content takes one or the other/,
    ],
    [
      'alert tcp any any -> any 80 (content:"GET"; offset:1; content:"x"; within:3; offset:2; sid:11;)',
      "offset:2",
      /'offset' is from the start of the bytes, 'within' after the previous content/,
    ],
    [
      'alert tcp any any -> any 80 (content:"a"; offset:1; content:"b"; offset:0; distance:2; sid:12;)',
      "distance:2",
      /'distance' is after the previous content, 'offset' from the start of the bytes/,
    ],
    [
      'alert tcp any any -> any 80 (flow:to_server,to_client; content:"x"; sid:2;)',
      "to_client",
      /flow 'to_client' and 'to_server': a signature has one direction/,
    ],
    [
      'alert tcp any any -> any 80 (flow:from_client; flow:to_server; content:"x"; sid:23;)',
      "to_server",
      /flow 'to_server' and 'from_client': a signature has one direction/,
    ],
    [
      'alert tcp any any -> any 80 (flow:established,established; content:"x"; sid:15;)',
      "established;",
      /flow 'established' is given twice/,
    ],
    [
      'alert tcp any any -> any 80 (content:"x"; sid:3; sid:33;)',
      "sid:33",
      /a signature has one sid/,
    ],
    [
      'alert tcp any any -> any 80 (content:"abcdef"; depth:3; sid:4;)',
      "depth:3",
      /depth 3 is shorter than the content \(6 bytes\): it never matches/,
    ],
    [
      'alert tcp any any -> any 80 (content:!"abcdef"; offset:2; depth:3; sid:20;)',
      "depth:3",
      /depth 3 is shorter than the content/,
    ],
    [
      'alert tcp any any -> any 80 (content:"a"; content:"|61 62 63|"; distance:0; within:2; sid:5;)',
      "within:2",
      /within 2 is shorter than the content \(3 bytes\): it never matches/,
    ],
    [
      'alert tcp any any -> any 80 (content:"abc"; nocase; nocase; sid:6;)',
      "nocase; sid",
      /'nocase' is given twice for this content/,
    ],
    [
      'alert tcp any any -> any 80 (content:"abc"; depth:5; depth:6; sid:7;)',
      "depth:6",
      /'depth' is given twice for this content/,
    ],
    [
      'alert tcp any any -> any 80 (content:"a"; content:"b"; distance:1; distance:2; sid:9;)',
      "distance:2",
      /'distance' is given twice for this content/,
    ],
  ];
  for (const [text, where, message] of refused) {
    const p = parseSignature(text);
    assert.ok(!p.ok, text);
    assert.equal(p.problems.length, 1, text);
    const first = p.problems[0]!;
    assert.equal(first.kind, "malformed", text);
    assert.match(first.message, message, text);
    assert.equal(text.slice(first.at, first.at + where.length), where, text);
  }
  // what Suricata takes: both limits on different contents, a depth as long as the content
  for (const text of [
    'alert tcp any any -> any 80 (content:"GET"; depth:3; content:"x"; distance:0; within:1; sid:1;)',
    'alert tcp any any -> any 80 (flow:established,to_server; content:"x"; sid:2;)',
    'alert tcp any any -> any 80 (content:"abc"; offset:2; depth:3; nocase; sid:3;)',
  ])
    assert.ok(parseSignature(text).ok, text);
  // in a policy: an error at FILE:LINE:COL, and the policy is refused
  const check = checkPolicySource(
    `version: 1\nmode: detect\nids:\n  rules:\n    - 'alert tcp any any -> any 80 (content:"abc"; depth:2; sid:8;)'\n`,
    "p.yaml",
    textOnlyHost,
  ).diagnostics.map((d) => `${d.line}:${d.col} ${d.severity}: ${d.message}`);
  assert.deepEqual(check, [
    "5:52 error: depth 2 is shorter than the content (3 bytes): it never matches",
  ]);
});
