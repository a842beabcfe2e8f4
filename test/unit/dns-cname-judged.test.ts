// The names of an answer's CNAME chain are judged as the query's name is, by moat's DNS proxy on
// loopback: a name a `layer7.dns.name` rule blocks refuses the whole answer; a chain name that
// only the defaults would block does not (an allow-listed name's CDN alias still resolves).
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import dnsPacket from "dns-packet";
import { askUdp, proxyToServer } from "../helpers/loopback-dns-proxy.ts";

const POLICY = `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
rules:
  - { name: no-tracker, direction: egress, action: block, layer7: { dns: { name: ["**.tracker.example"] } } }
  - { name: lookups, direction: egress, action: allow, layer7: { dns: { name: [www.example, shop.example] } } }
`;

/** www.example -> cdn.example (no rule names it); shop.example -> x.tracker.example. */
const CHAINS: Record<string, string> = {
  "www.example": "cdn.example",
  "shop.example": "x.tracker.example",
};

function answer(q: Buffer): Buffer {
  const d = dnsPacket.decode(q);
  const name = d.questions?.[0]?.name ?? "";
  const target = CHAINS[name] ?? name;
  const answers: dnsPacket.Answer[] = [
    { type: "CNAME", name, ttl: 60, data: target },
    { type: "A", name: target, ttl: 60, data: "192.0.2.9" },
  ];
  return dnsPacket.encode({ id: d.id, type: "response", questions: d.questions, answers });
}

/** The proxy before the server `answer`; `ask` sends an A query (id 5) for `name`. */
async function start(t: TestContext) {
  const { p, port } = await proxyToServer(t, POLICY, answer);
  const ask = (name: string) =>
    askUdp(port, dnsPacket.encode({ id: 5, type: "query", questions: [{ type: "A", name }] }), {
      timeoutMs: 3000,
    });
  return { p, ask };
}

test("a chain name a layer7.dns.name rule blocks: REFUSED, reported by that name, nothing bound", async (t) => {
  const { p, ask } = await start(t);
  const r = await ask("shop.example");
  assert.equal(r.rcode, "REFUSED");
  assert.deepEqual(r.answers, []);
  assert.deepEqual(p.bound, []);
  const blocked = p.events.find((e) => e.type === "blocked");
  assert.equal(blocked?.rule, "no-tracker");
  assert.deepEqual(blocked?.layer7, { dns: { name: "x.tracker.example" } });
  const dns = p.events.find((e) => e.type === "dns");
  assert.equal(dns?.dns?.query, "shop.example");
  assert.equal(dns?.dns?.rcode, "REFUSED");
  assert.equal(p.proxy.stats.refused, 1);
});

test("a chain name only the defaults would block is answered and bound", async (t) => {
  const { p, ask } = await start(t);
  const r = await ask("www.example");
  assert.equal(r.rcode, "NOERROR");
  assert.equal(r.answers?.length, 2);
  assert.deepEqual(
    p.bound.map((b) => b.ip),
    ["192.0.2.9"],
  );
  const dns = p.events.find((e) => e.type === "dns");
  assert.equal(dns?.rule, "lookups");
  assert.deepEqual(dns?.dns?.names, ["www.example", "cdn.example"]);
  assert.equal(
    p.events.some((e) => e.type === "blocked"),
    false,
  );
});
