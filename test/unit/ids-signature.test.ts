// IDS signatures in the policy: moat's Suricata/Snort subset accepted, refused keywords reported
// as warnings at FILE:LINE:COL (inline and in a rules file), malformed ones as errors, and the
// matcher on hand-made streams.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseSignature } from "../../src/config/ids-signature.ts";
import { checkPolicySource, textOnlyHost } from "../../src/config/parse.ts";
import { nodeHost } from "../../src/host/index.ts";
import { parsePolicy } from "../../src/config/index.ts";
import { IdsMatcher, type IdsStream } from "../../src/policy/ids-match.ts";
import { explanationLines } from "../../src/policy/explain-lines.ts";
import { parseConnectionText } from "../../src/policy/index.ts";

const HTTP =
  'alert tcp any any -> $HOME_NET [80,8080:8090] (msg:"admin probe"; flow:established,to_server; content:"GET"; depth:3; content:"/ADMIN"; nocase; distance:1; within:10; sid:1000001; rev:2; classtype:web-application-attack;)';

test("the accepted subset: header, content with |hex|, nocase, offset/depth, distance/within, flow, sid/msg", () => {
  const p = parseSignature(HTTP);
  assert.ok(p.ok);
  const s = p.signature;
  assert.equal(s.action, "alert");
  assert.equal(s.protocol, "tcp");
  assert.deepEqual(s.target.addresses, { kind: "home" });
  assert.deepEqual(s.target.ports, {
    kind: "list",
    ranges: [
      { lo: 80, hi: 80, negated: false },
      { lo: 8080, hi: 8090, negated: false },
    ],
  });
  assert.equal(s.flow, "to_server");
  assert.equal(s.sid, 1000001);
  assert.equal(s.rev, 2);
  assert.equal(s.msg, "admin probe");
  assert.deepEqual(s.contents, [
    { pattern: "GET", nocase: false, negated: false, depth: 3 },
    { pattern: "/ADMIN", nocase: true, negated: false, distance: 1, within: 10 },
  ]);
  const hex = parseSignature(
    'drop udp 10.0.0.0/8 !53 <> any any (content:"a|0d 0A|b\\;"; offset:2; sid:7;)',
  );
  assert.ok(hex.ok);
  assert.equal(hex.signature.contents[0]?.pattern, "a\r\nb;");
  assert.equal(hex.signature.bidirectional, true);
  assert.deepEqual(hex.signature.source.ports, {
    kind: "list",
    ranges: [{ lo: 53, hi: 53, negated: true }],
  });
});

test("refused keywords, protocols, variables and flow options are reported where they are", () => {
  const text =
    'alert http any any -> any $HTTP_PORTS (msg:"x"; content:"a"; pcre:"/a/"; flow:stateless; sid:1;)';
  const p = parseSignature(text);
  assert.ok(!p.ok);
  assert.deepEqual(
    p.problems.map((x) => [x.kind, text.slice(x.at, x.at + 6), x.message.split(" (")[0]]),
    [
      ["refused", "http a", "protocol 'http' is not supported"],
      ["refused", "$HTTP_", "port '$HTTP_PORTS' is not supported"],
      ["refused", 'pcre:"', "keyword 'pcre' is not supported"],
      ["refused", "statel", "flow 'stateless' is not supported"],
    ],
  );
});

test("malformed signatures: no sid, bad header, unclosed content, modifier before content", () => {
  const bad = (t: string) => {
    const p = parseSignature(t);
    assert.ok(!p.ok, t);
    const first = p.problems[0];
    assert.ok(first);
    assert.equal(first.kind, "malformed");
    return first.message;
  };
  assert.match(bad('alert tcp any any -> any 80 (content:"a";)'), /needs a sid/);
  assert.match(bad('alert tcp any any any 80 (content:"a"; sid:1;)'), /header has 6 words/);
  assert.match(bad('alert tcp any any => any 80 (content:"a"; sid:1;)'), /'->' or '<>'/);
  assert.match(bad('alert tcp any any -> any 80 (content:"a; sid:1;)'), /not closed/);
  assert.match(
    bad('alert tcp any any -> any 80 (nocase; content:"a"; sid:1;)'),
    /must follow a content/,
  );
  assert.match(bad('alert tcp any any -> any 99999 (content:"a"; sid:1;)'), /not a port/);
  assert.match(bad('alert tcp any any -> any 80 (content:"|0g|"; sid:1;)'), /hex digits/);
  const many = Array.from({ length: 65 }, () => 'content:"a";').join(" ");
  assert.match(
    bad(`alert tcp any any -> any 80 (${many} sid:1;)`),
    /65 contents: a signature takes at most 64/,
  );
});

test("matcher: contents that could match at many places take as many tries as the bytes allow, not more", () => {
  const sig = (t: string) => {
    const p = parseSignature(t);
    assert.ok(p.ok, t);
    return { ...p.signature, text: t, pos: { file: "p", line: 1, col: 1, path: "ids" } };
  };
  // every zero byte is a place for each of the first five contents; only the last can fail: tried
  // place by place, 1 KiB of zeros is 1024^5 combinations
  const zeros = 'content:"|00|"; '.repeat(5);
  const m = new IdsMatcher([
    sig(`alert tcp any any -> any any (${zeros}content:"ZZ"; sid:1;)`),
    sig(`alert tcp any any -> any any (${zeros}content:"|00|"; sid:2;)`),
  ]);
  const data = "\u0000".repeat(1024);
  assert.deepEqual(
    m.match(stream(data)).map((r) => r.sid),
    [2],
  );
  assert.deepEqual(
    m.match(stream(`${data}ZZ`)).map((r) => r.sid),
    [1, 2],
  );
});

test("matcher: a direction's tries are its own, over every match of its bytes as they grow", () => {
  const text =
    'alert tcp any any -> any any (content:"|00|"; content:"|00|"; distance:0; content:"|00|"; distance:0; content:"x"; distance:0; sid:7;)';
  const p = parseSignature(text);
  assert.ok(p.ok);
  const pos = { file: "p", line: 1, col: 1, path: "ids" };
  const m = new IdsMatcher([{ ...p.signature, text, pos }]);
  // 1 KiB of zeros and no "x": the signature spends all its tries on the direction's bytes
  const zeros = "\u0000".repeat(1024);
  const direction = m.budget();
  assert.deepEqual(m.match(stream(zeros), direction), []);
  assert.ok((direction[0] ?? 0) <= 0, `${direction[0]} tries left`);
  // the same bytes and one more: a match of its own would find the signature at once; the
  // direction's next match does not try it again (a peer sending a byte a packet would have each
  // copy start the search over)
  assert.deepEqual(
    m.match(stream(`${zeros}x`)).map((r) => r.sid),
    [7],
  );
  assert.deepEqual(m.match(stream(`${zeros}x`), direction), []);
});

test("moat check: a refused keyword is a warning at FILE:LINE:COL, inline and in a rules file", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-ids-"));
  try {
    const rules = join(dir, "local.rules");
    writeFileSync(
      rules,
      [
        "# local signatures",
        'alert tcp any any -> any 80 (msg:"ok"; content:"x"; sid:10;)',
        '  alert tcp any any -> any 80 (msg:"pcre"; content:"x"; pcre:"/x/"; sid:11;)',
        'alert tcp any any -> any 80 (msg:"dup"; content:"y"; sid:10;)',
      ].join("\n"),
    );
    const policy = join(dir, "p.yaml");
    const text = [
      "version: 1",
      "mode: detect",
      "ids:",
      "  rules_file: local.rules",
      "  rules:",
      `    - 'alert tcp any any -> any 80 (msg:"a"; content:"a"; byte_test:1,>,2,0; sid:1;)'`,
      `    - alert tcp any any -> any 80 (msg:"b"; content:"b"; sid:2;)`,
      "",
    ].join("\n");
    writeFileSync(policy, text);
    const lines = checkPolicySource(text, policy, nodeHost).diagnostics.map(
      (d) =>
        `${d.file === policy ? "p.yaml" : "local.rules"}:${d.line}:${d.col} ${d.severity}: ${d.message.split(" (")[0]}`,
    );
    assert.deepEqual(lines, [
      "p.yaml:6:59 warning: keyword 'byte_test' is not supported",
      "local.rules:3:57 warning: keyword 'pcre' is not supported",
      "local.rules:4:1 error: duplicate sid 10",
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the model: detect by default whatever the policy's mode, 512 bytes, every flow", () => {
  const model = parsePolicy(
    `version: 1\nmode: prevent\nids:\n  rules:\n    - '${HTTP}'\n    - 'alert tcp any any -> any any (content:"a"; pcre:"/a/"; sid:5;)'\n`,
    "p.yaml",
    textOnlyHost,
  );
  assert.equal(model.ids?.mode, "detect");
  assert.equal(model.ids?.bytes, 512);
  assert.equal(model.ids?.sample, 1);
  assert.equal(model.ids?.signatures.length, 1);
  assert.equal(model.ids?.refused, 1);
  assert.equal(model.ids?.signatures[0]?.pos.line, 5);
});

const stream = (data: string, over: Partial<IdsStream> = {}): IdsStream => ({
  protocol: "tcp",
  toServer: true,
  sender: { ip: "192.0.2.9", port: 40000 },
  receiver: { ip: "10.0.0.1", port: 80 },
  senderLocal: false,
  data,
  final: true,
  ...over,
});

test("matcher: contents in order with their windows, nocase, the header and flow direction", () => {
  const sig = (t: string) => {
    const p = parseSignature(t);
    assert.ok(p.ok, t);
    return { ...p.signature, text: t, pos: { file: "p", line: 1, col: 1, path: "ids" } };
  };
  const m = new IdsMatcher([
    sig(HTTP),
    sig('alert tcp any any -> any any (content:"secret"; offset:4; depth:10; sid:2;)'),
    sig('alert tcp any any -> any any (content:"GET"; content:!"Host"; sid:3;)'),
    sig('alert tcp $HOME_NET any -> any any (flow:to_client; content:"200"; sid:4;)'),
    sig('alert udp any any <> 192.0.2.0/24 any (content:"x"; sid:5;)'),
  ]);
  const sids = (s: IdsStream) => m.match(s).map((r) => r.sid);
  assert.deepEqual(sids(stream("GET /admin HTTP/1.1\r\nHost: a\r\n")), [1000001]);
  assert.deepEqual(sids(stream("GET  /admin")), [1000001, 3], "distance 1 within 10");
  assert.deepEqual(sids(stream("GET /x/y/z/admin")), [3], "past within");
  assert.deepEqual(sids(stream("get /admin Host")), [], "GET is case-sensitive");
  assert.deepEqual(sids(stream("GET /admin", { receiver: { ip: "10.0.0.1", port: 81 } })), [3]);
  assert.deepEqual(sids(stream("xxxxsecret")), [2]);
  assert.deepEqual(sids(stream("xxxxxxxxxsecret")), [], "past depth");
  assert.deepEqual(sids(stream("xxsecret")), [], "before offset");
  const reply = {
    toServer: false,
    sender: { ip: "10.0.0.1", port: 80 },
    receiver: { ip: "192.0.2.9", port: 40000 },
    senderLocal: true,
  };
  assert.deepEqual(sids(stream("HTTP/1.1 200 OK", reply)), [4]);
  assert.deepEqual(sids(stream("HTTP/1.1 200 OK")), [], "to_client only");
  assert.deepEqual(sids(stream("x", { protocol: "udp", ...reply })), [5], "<> either way");
  assert.deepEqual(
    m.watching(stream("")).map((r) => r.sid),
    [1000001, 2, 3],
  );
});

test("moat explain: the signatures watching a connection each way, and what a match does", () => {
  const model = parsePolicy(
    [
      "version: 1",
      "mode: prevent",
      "defaults: { ingress: allow, egress: allow }",
      "ids:",
      "  mode: prevent",
      "  rules:",
      `    - 'drop tcp any any -> $HOME_NET 80 (msg:"admin probe"; flow:to_server; content:"/admin"; sid:1;)'`,
      `    - 'alert tcp $HOME_NET 80 -> any any (msg:"server error"; flow:to_client; content:"500"; sid:2;)'`,
      `    - 'alert tcp any any -> any 22 (msg:"ssh"; content:"SSH-"; sid:3;)'`,
      "",
    ].join("\n"),
    "p.yaml",
    textOnlyHost,
  );
  const conn = (words: string[]) => {
    const parsed = parseConnectionText(words, "ingress");
    assert.ok(parsed.ok);
    return parsed.value;
  };
  const facts = conn(["tcp", "203.0.113.9:51514", "->", "10.0.0.1:80"]);
  const lines = explanationLines(model, facts).filter((l) => l.startsWith("ids"));
  assert.deepEqual(lines, [
    'ids to_server: the first 512 bytes are matched against sid 1 "admin probe" (drop)',
    'ids to_client: the first 512 bytes are matched against sid 2 "server error" (alert)',
    "ids: a match is reported; a drop or reject signature's match cuts the connection, after the matched bytes reached the socket",
  ]);
  const other = explanationLines(model, conn(["udp", "203.0.113.9:5000", "->", "10.0.0.1:53"]));
  assert.equal(other.filter((l) => l.startsWith("ids")).length, 0);
});

test("every address entry is read as an IP or CIDR: a bad one is an error at its place, never a match of every address", () => {
  const bad: [string, RegExp][] = [
    ["10.0.0.256", /'10\.0\.0\.256' is not an IPv4 address \(256 > 255\)/],
    ["1.2.3.4/99", /bad prefix length '\/99' \(0-32 for IPv4\)/],
    ["!1.2.3", /'1\.2\.3' is not an IPv4 address/],
    ["[192.0.2.1, !10.0.0.0/33]", /bad prefix length '\/33'/],
    ["2001:db8::/129", /bad prefix length '\/129' \(0-128 for IPv6\)/],
    ["abc.def", /'abc\.def' is not an IP address or CIDR/],
    ["1.2.3.4/", /bad prefix length/],
  ];
  for (const [addr, message] of bad) {
    const text = `drop tcp ${addr} any -> any any (content:"GET"; sid:10;)`;
    const p = parseSignature(text);
    assert.ok(!p.ok, addr);
    assert.equal(p.problems.length, 1, addr);
    const first = p.problems[0]!;
    assert.equal(first.kind, "malformed", addr);
    assert.match(first.message, message, addr);
    const entry = addr.startsWith("[") ? "!10.0.0.0/33" : addr;
    assert.equal(text.slice(first.at, first.at + entry.length), entry, addr);
  }
  const check = checkPolicySource(
    `version: 1\nmode: detect\nids:\n  rules:\n    - 'drop tcp any any -> 10.0.0.256 80 (content:"POST"; sid:8;)'\n`,
    "p.yaml",
    textOnlyHost,
  ).diagnostics.map((d) => `${d.line}:${d.col} ${d.severity}: ${d.message}`);
  assert.deepEqual(check, ["5:28 error: '10.0.0.256' is not an IPv4 address (256 > 255)"]);
  // what is accepted matches as written: a CIDR, a negated entry, IPv6, an IPv4-mapped address
  const good = parseSignature(
    'alert tcp [192.0.2.0/24, !192.0.2.7, 2001:db8::/32, ::ffff:198.51.100.1] any -> any any (content:"x"; sid:1;)',
  );
  assert.ok(good.ok);
  const m = new IdsMatcher([
    { ...good.signature, text: "", pos: { file: "p", line: 1, col: 1, path: "ids" } },
  ]);
  const from = (ip: string) =>
    m.match(stream("x", { sender: { ip, port: 40000 } })).map((r) => r.sid);
  assert.deepEqual(from("192.0.2.9"), [1]);
  assert.deepEqual(from("192.0.2.7"), [], "left out by the negated entry");
  assert.deepEqual(from("192.0.3.1"), []);
  assert.deepEqual(from("2001:db8::5"), [1]);
  // an IPv4-mapped address is IPv6, as Suricata reads it: not the IPv4 address it maps
  assert.deepEqual(from("198.51.100.1"), []);
  assert.deepEqual(from("::ffff:198.51.100.1"), [1]);
  assert.deepEqual(from("::ffff:192.0.2.9"), []);
  assert.deepEqual(from("203.0.113.9"), []);
});

test("a backslash just before the closing ')' escapes nothing: the last option is read and judged", () => {
  const unclosed = parseSignature(
    'alert tcp any any -> any any (content:"GET"; sid:1; content:"abc\\)',
  );
  assert.ok(!unclosed.ok);
  assert.deepEqual(
    unclosed.problems.map((p) => [p.kind, p.message]),
    [["malformed", "a quoted value is not closed"]],
  );
  const text = 'alert tcp any any -> any any (content:"GET"; sid:3; pcre:/x\\)';
  const refused = parseSignature(text);
  assert.ok(!refused.ok);
  assert.deepEqual(
    refused.problems.map((p) => [p.kind, text.slice(p.at, p.at + 5)]),
    [["refused", "pcre:"]],
  );
  const stray = parseSignature('alert tcp any any -> any any (content:"GET"; sid:2; \\)');
  assert.ok(!stray.ok);
  assert.equal(stray.problems[0]?.kind, "malformed");
  const escaped = parseSignature('alert tcp any any -> any any (content:"a\\\\"; sid:4;)');
  assert.ok(escaped.ok);
  assert.equal(escaped.signature.contents[0]?.pattern, "a\\");
});

test("matcher: a negated content is absent only once the bytes its range covers are here, or no more will come", () => {
  const sig = (t: string) => {
    const p = parseSignature(t);
    assert.ok(p.ok, t);
    return { ...p.signature, text: t, pos: { file: "p", line: 1, col: 1, path: "ids" } };
  };
  const m = new IdsMatcher([
    sig(
      'alert tcp any any -> any any (content:"GET "; depth:4; content:!"Host:"; depth:200; sid:7;)',
    ),
    sig('alert tcp any any -> any any (content:"GET"; content:!"Host"; sid:8;)'),
    sig('alert tcp any any -> any any (content:"A"; content:!"B"; distance:0; within:3; sid:9;)'),
  ]);
  const sids = (data: string, final: boolean) => m.match(stream(data, { final })).map((r) => r.sid);
  const head = "GET /index.html HTTP/1.1\r\n";
  assert.deepEqual(sids(head, false), [], "Host: may still come within the first 200 bytes");
  assert.deepEqual(sids(`${head}Host: example.com\r\n\r\n`, false), []);
  assert.deepEqual(sids(`${head}Host: example.com\r\n\r\n`, true), []);
  assert.deepEqual(sids(head.padEnd(199, "x"), false), [], "one byte of the 200 still to come");
  assert.deepEqual(sids(head.padEnd(200, "x"), false), [7], "the 200 bytes are here");
  assert.deepEqual(sids(head, true), [7, 8], "no more bytes will come");
  // relative to the previous match: its range ends 3 bytes after the "A"
  assert.deepEqual(sids("xAcc", false), []);
  assert.deepEqual(sids("xAcccB", false), [9], "B is past the range");
  assert.deepEqual(sids("xAcB", false), []);
  assert.deepEqual(sids("xAc", true), [9]);
});
