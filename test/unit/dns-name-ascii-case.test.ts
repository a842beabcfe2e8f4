// DNS compares ASCII letters without case and every other octet as it is (RFC 4343): moat's DNS
// proxy judges, binds and reports a name as the server reads it. A label with the UTF-8 bytes of
// U+212A KELVIN SIGN is not "k" (JavaScript's toLowerCase would make it one), so it never reads
// as a name the policy allows; upper-case ASCII still does.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import dnsPacket from "dns-packet";
import { aQuery, askUdp, proxyToServer } from "../helpers/loopback-dns-proxy.ts";

const POLICY = `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
rules:
  - { name: kevil-lookup, direction: egress, action: allow, layer7: { dns: { name: [kevil.test, www.example] } } }
  - { name: to-kevil, direction: egress, action: allow, layer3: { remote: [kevil.test] } }
`;

const KELVIN = "\u212a";
/** The UTF-8 bytes of U+212A, as dig writes them. */
const KELVIN_TEXT = "\\226\\132\\170";

/** A server answering `www.example` with a CNAME to the Kelvin name, any other name with an A. */
function answer(q: Buffer): Buffer {
  const d = dnsPacket.decode(q);
  const name = d.questions?.[0]?.name ?? "";
  const target = `${KELVIN}evil.test`;
  const answers: dnsPacket.Answer[] =
    name === "www.example"
      ? [
          { type: "CNAME", name, ttl: 60, data: target },
          { type: "A", name: target, ttl: 60, data: "192.0.2.8" },
        ]
      : [{ type: "A", name, ttl: 60, data: "192.0.2.7" }];
  return dnsPacket.encode({ id: d.id, type: "response", questions: d.questions, answers });
}

/** The proxy before the server `answer`; `ask` sends curl's A query for `name`. */
async function start(t: TestContext) {
  const { p, up, port } = await proxyToServer(t, POLICY, answer);
  const ask = (name: string, id: number) => askUdp(port, aQuery(name, id), { timeoutMs: 3000 });
  return { p, up, ask };
}

test("a query whose label has a Kelvin sign is not the allowed name with a k", async (t) => {
  const { p, up, ask } = await start(t);
  const r = await ask(`${KELVIN}evil.test`, 1);
  assert.equal(r.rcode, "REFUSED", "judged by the defaults (egress block), not kevil-lookup");
  assert.deepEqual(up.seen, [], "nothing asked upstream");
  assert.equal(p.bound.length, 0);
  const dns = p.events.find((e) => e.type === "dns");
  assert.equal(dns?.dns?.query, `${KELVIN_TEXT}evil.test`, "reported as dig writes it");
  assert.equal(dns?.rule, "default");
});

test("upper-case ASCII is still the same name", async (t) => {
  const { p, ask } = await start(t);
  const r = await ask("KEVIL.Test.", 2);
  assert.equal(r.rcode, "NOERROR");
  const dns = p.events.find((e) => e.type === "dns");
  assert.equal(dns?.rule, "kevil-lookup");
  assert.equal(dns?.dns?.query, "kevil.test");
  assert.deepEqual(dns?.dns?.names, ["kevil.test"]);
});

test("a CNAME target with a Kelvin sign is bound by its own bytes, not as kevil.test", async (t) => {
  const { p, ask } = await start(t);
  const r = await ask("www.example", 3);
  assert.equal(r.rcode, "NOERROR");
  const dns = p.events.find((e) => e.type === "dns");
  assert.deepEqual(dns?.dns?.names, ["www.example", `${KELVIN_TEXT}evil.test`]);
  assert.deepEqual(dns?.dns?.answers, ["192.0.2.8"]);
});
