// Names on events: a DNS query's event and its audit line, a blocked query also as a blocked
// event with layer7 dns; connection events carry the names the owner learned for the remote
// address (`-> github.com (140.82.112.3):443`); the live filter and the history find events by
// a remote name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatEventLine } from "../../src/datapath/event.ts";
import { queryEvents } from "../../src/dns/dns-event.ts";
import { matchesFilter, parseFilter, filterParams } from "../../src/observe/filter.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { fakeEvent } from "../helpers/events.ts";

const curl = {
  pid: 812,
  name: "curl",
  path: "/usr/bin/curl",
  user: 1000,
  cgroup: "/user.slice",
  container: null,
};
const time = new Date("2026-12-02T10:00:00Z");

test("a query is one dns event; its line says who asked whom what, and the answer", () => {
  const events = queryEvents({
    protocol: "udp",
    client: { ip: "127.0.0.1", port: 40000 },
    server: { ip: "10.0.0.53", port: 53 },
    process: curl,
    verdict: { verdict: "allowed", rule: "default", mode: "prevent" },
    exchange: {
      query: "github.com",
      qtype: "A",
      rcode: "NOERROR",
      answers: ["140.82.112.3"],
      trusted: true,
      names: ["github.com"],
    },
    generation: 3,
    time,
  });
  assert.equal(events.length, 1);
  const [ev] = events;
  assert.equal(ev?.type, "dns");
  assert.deepEqual(ev?.remote, { ip: "10.0.0.53", port: 53 });
  assert.equal(ev?.hook, "dns_proxy");
  assert.equal(
    ev && formatEventLine(ev),
    "2026-12-02T10:00:00.000Z DNS egress curl pid 812 asked 10.0.0.53 A github.com: NOERROR 140.82.112.3",
  );
});

test("a blocked query is also a blocked event with layer7 dns and the deciding rule", () => {
  const events = queryEvents({
    protocol: "udp",
    client: { ip: "10.66.0.2", port: 40000 },
    server: { ip: "10.0.0.53", port: 53 },
    process: curl,
    verdict: { verdict: "blocked", rule: "no-ads", mode: "prevent" },
    exchange: {
      query: "ads.example",
      qtype: "AAAA",
      rcode: "REFUSED",
      answers: [],
      trusted: false,
    },
    generation: 3,
    time,
  });
  assert.deepEqual(
    events.map((e) => [e.type, e.verdict, e.rule, e.layer7]),
    [
      ["dns", "blocked", "no-ads", null],
      ["blocked", "blocked", "no-ads", { dns: { name: "ads.example" } }],
    ],
  );
  assert.equal(events[1]?.dns, undefined);
  assert.equal(
    events[0] && formatEventLine(events[0]),
    "2026-12-02T10:00:00.000Z DNS egress curl pid 812 asked 10.0.0.53 AAAA ads.example: REFUSED (untrusted server: no names bound)",
  );
  assert.equal(
    events[1] && formatEventLine(events[1]),
    "2026-12-02T10:00:00.000Z BLOCKED egress udp 10.66.0.2:40000 -> 10.0.0.53:53 DNS query ads.example by rule no-ads (curl pid 812)",
  );
});

test("a connection's line names its remote when its process looked the address up", () => {
  const ev = fakeEvent({
    time: time.toISOString(),
    type: "allowed",
    verdict: "allowed",
    direction: "egress",
    rule: "github",
    local: { ip: "10.66.0.2", port: 40000 },
    remote: { ip: "140.82.112.3", port: 443, names: ["github.com"] },
    interface: null,
    hook: "connect",
  });
  assert.equal(
    formatEventLine(ev),
    "2026-12-02T10:00:00.000Z ALLOWED egress tcp 10.66.0.2:40000 -> github.com (140.82.112.3):443 by rule github",
  );
});

test("the remote filter takes a name: events whose remote names contain it", () => {
  const named = fakeEvent({
    remote: { ip: "140.82.112.3", port: 443, names: ["github.com", "lb.github.net"] },
  });
  const other = fakeEvent({ remote: { ip: "140.82.112.3", port: 443 } });
  const f = parseFilter(new URLSearchParams("remote=GitHub.com."));
  assert.deepEqual(f, { remoteName: "github.com" });
  assert.equal(matchesFilter(f, named), true);
  assert.equal(matchesFilter(f, other), false);
  assert.equal(filterParams(f).toString(), "remote=github.com");
  assert.ok(parseFilter(new URLSearchParams("remote=10.0.0.0/8")).remote, "a CIDR stays a CIDR");
  assert.deepEqual(parseFilter(new URLSearchParams("type=dns")), { types: ["dns"] });
});

test("the history finds events by a remote name", (t) => {
  const store = new HistoryStore(":memory:");
  t.after(() => store.close());
  store.insert([
    fakeEvent({ rule: "a", remote: { ip: "140.82.112.3", port: 443, names: ["github.com"] } }),
    fakeEvent({ rule: "b", remote: { ip: "140.82.112.3", port: 443 } }),
    fakeEvent({ rule: "c", remote: { ip: "10.0.0.1", port: 443, names: ["api.github.com"] } }),
  ]);
  const page = store.query(parseFilter(new URLSearchParams("remote=github.com")));
  assert.deepEqual(
    page.events.map((e) => e.rule),
    ["a"],
  );
});
