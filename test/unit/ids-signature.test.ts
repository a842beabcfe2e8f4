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
