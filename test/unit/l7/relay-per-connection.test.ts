// The relay's per-connection shortcuts give what the longer way gave: the protocol told from the
// bytes in place (against the head read as text, every prefix of every start and more; a
// connection's sniffer resuming where it stopped against sniff from the start), and one
// TLS judgement standing for both of `settled`'s when `pending` cannot change it (against the
// reference evaluator judging both ways, and the relay's judge against the evaluator).

import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../../src/config/index.ts";
import { evaluate, type ConnectionFacts } from "../../../src/policy/evaluator.ts";
import type { TlsFacts } from "../../../src/policy/facts.ts";
import { connect } from "node:net";
import { decide, pendingMatters } from "../../../src/l7/decide.ts";
import { L7Relay } from "../../../src/l7/index.ts";
import type { L7Decision } from "../../../src/l7/types.ts";
import { sniff, sniffer } from "../../../src/l7/sniff.ts";
import { sniffAsText } from "../../helpers/sniff-model.ts";

test("sniff tells every prefix and extension of each start, and other bytes, as the text compare does", () => {
  const texts = ["SSH-2.0-x\r\n", "GET / HTTP/1.1\r\n", "PRI * HTTP/2.0\r\n\r\nSM", "OPTIONS * x"];
  texts.push("DELETE /a", "CONNECT h:1 ", "TRACE / ", "PATCH /", "PUT /", "POST /", "HEAD /");
  texts.push("\r\n\nPROPFIND /a HTTP/1.0\n", "QUERY /?q HTTP/1.1\r\n", "HELO x\r\n");
  const heads: Buffer[] = [];
  for (const t of texts) for (let n = 0; n <= t.length; n++) heads.push(Buffer.from(t.slice(0, n)));
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 5000; i++) {
    const base = texts[Math.floor(random() * texts.length)] ?? "";
    const bytes = Buffer.from(base.slice(0, Math.floor(random() * (base.length + 1))), "latin1");
    const out = Buffer.concat([bytes, Buffer.from([Math.floor(random() * 256)])]);
    if (random() < 0.3) out[Math.floor(random() * out.length)] = Math.floor(random() * 256);
    heads.push(out, Buffer.from([0x16, Math.floor(random() * 256)]));
  }
  heads.push(
    Buffer.from([0x16]),
    Buffer.from("G\xc5T ", "latin1"),
    Buffer.from("GET\x00", "latin1"),
  );
  for (const h of heads)
    assert.equal(sniff(h), sniffAsText(h), JSON.stringify(h.toString("latin1")));
});

test("a connection's sniffer, fed its head as it grows a byte at a time, answers as sniff does", () => {
  for (const t of ["\r\nGET /a HTTP/1.1\r\nHost: a\r\n", "SSH-2.0-x\r\n", "HELO x\r\n", "G(x"]) {
    const grown = sniffer();
    for (let n = 1; n <= t.length; n++) {
      const head = Buffer.from(t.slice(0, n), "latin1");
      assert.equal(grown(head), sniff(head), JSON.stringify(t.slice(0, n)));
    }
  }
});

const policy = (rules: string) =>
  parsePolicy(
    `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { cgroup: /moat-test }
rules:
${rules}`,
    "relay.yaml",
  );

const withVersion = policy(`  - name: modern-only
    direction: egress
    action: block
    layer7: { tls: { version: ["<1.3"] } }
  - name: web
    direction: egress
    action: allow
    layer7: { tls: { sni: [web.test], trust_sni: true } }
`);
const withCertificate = policy(`  - name: web
    direction: egress
    action: allow
    layer7: { tls: { sni: [web.test], trust_sni: true, certificate: { subject_cn: "*.test" } } }
  - { name: other, direction: egress, action: block, layer7: { tls: {} } }
`);
const sniOnly = policy(`  - name: web
    direction: egress
    action: allow
    layer7: { tls: { sni: [web.test], trust_sni: true } }
  - { name: other, direction: egress, action: block, layer7: { tls: {} } }
`);

const facts = (tls: TlsFacts): ConnectionFacts => ({
  direction: "egress",
  protocol: "tcp",
  family: 4,
  local: { ip: "10.0.0.5", port: 40000 },
  remote: { ip: "203.0.113.9", port: 443, names: [] },
  process: { pid: 1 },
  layer7: { tls },
});

const certificate = { subject_cn: "www.test", issuer: "CN=CA", valid: true };

test("pending is said not to matter only where judging both ways gives the same evaluation", () => {
  const cases: TlsFacts[] = [];
  for (const sni of [undefined, "web.test", "other.test"])
    for (const offered of [[], ["1.3"], ["1.2"], ["1.3", "1.2"]])
      for (const version of [undefined, "1.3", "1.2"])
        for (const cert of [undefined, certificate, { ...certificate, subject_cn: "x.other" }])
          for (const unseen of [undefined, ["certificate" as const]])
            cases.push({
              ...(sni ? { sni } : {}),
              offered,
              alpn: [],
              ech: false,
              ...(version ? { version } : {}),
              ...(cert ? { certificate: cert } : {}),
              ...(unseen ? { unseen } : {}),
            });
  let skipped = 0;
  for (const model of [withVersion, withCertificate, sniOnly])
    for (const tls of cases) {
      if (pendingMatters(model, tls)) continue;
      skipped++;
      const yes = evaluate(model, facts({ ...tls, pending: "match" }));
      const no = evaluate(model, facts({ ...tls, pending: "no-match" }));
      assert.deepEqual(no, yes, JSON.stringify(tls));
    }
  // the shortcut does apply: every case of a policy without late conditions, and those whose
  // late facts are known
  assert.ok(skipped > cases.length);
});

test("pending matters while a condition's fact is not seen yet", () => {
  const hello: TlsFacts = { sni: "web.test", offered: ["1.3", "1.2"], alpn: [], ech: false };
  assert.equal(pendingMatters(withCertificate, hello), true);
  assert.equal(pendingMatters(withCertificate, { ...hello, certificate }), false);
  assert.equal(pendingMatters(withCertificate, { ...hello, unseen: ["certificate"] }), false);
  assert.equal(pendingMatters(withVersion, { ...hello, certificate }), true);
  assert.equal(pendingMatters(withVersion, { ...hello, version: "1.3" }), false);
  assert.equal(pendingMatters(sniOnly, hello), false);
  // judged both ways, a certificate rule not seen yet gives two answers
  const yes = evaluate(withCertificate, facts({ ...hello, pending: "match" }));
  const no = evaluate(withCertificate, facts({ ...hello, pending: "no-match" }));
  assert.notEqual(yes.rule, no.rule);
});

test("the relay's judge answers each of a TLS handler's judgements as the evaluator does", async (t) => {
  const hello: TlsFacts = { sni: "web.test", offered: ["1.3", "1.2"], alpn: [], ech: false };
  const steps: TlsFacts[] = [
    { ...hello, pending: "match" },
    { ...hello, pending: "no-match" },
    { ...hello, certificate, pending: "match" },
    { ...hello, certificate, pending: "no-match" },
    { ...hello, certificate: { ...certificate, subject_cn: "x.other" }, pending: "match" },
    { ...hello, certificate: { ...certificate, subject_cn: "x.other" }, pending: "no-match" },
    { ...hello, unseen: ["certificate"], pending: "match" },
    { ...hello, unseen: ["certificate"], pending: "no-match" },
    { ...hello, version: "1.2", pending: "match" },
    { ...hello, version: "1.2", pending: "no-match" },
  ];
  for (const model of [withVersion, withCertificate, sniOnly]) {
    const seen: [L7Decision, L7Decision][] = [];
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const relay = await L7Relay.open({
      original: () => ({
        original: { ip: "203.0.113.9", port: 443 },
        protocol: "tcp",
        redirect: 0,
        generation: 1,
        target: { ip: "127.0.0.1", port: 1 },
        owner: null,
      }),
      process: () => ({ pid: 1 }) as never,
      names: () => [],
      policy: () => model,
      generation: () => 1,
      report: () => {},
      log: () => {},
      handlers: {
        tls: (ctx) => {
          for (const tls of steps)
            seen.push([ctx.judge({ tls }), decide(model, ctx.facts, { tls })]);
          ctx.client.destroy();
          done();
          return Promise.resolve();
        },
      },
    });
    t.after(() => relay.close());
    const at = relay.addressFor(4);
    assert.ok(at);
    const s = connect(at.port, at.ip);
    s.on("error", () => {});
    s.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05]));
    await finished;
    s.destroy();
    for (const [judged, evaluated] of seen) assert.deepEqual(judged, evaluated);
  }
});
