// A CrowdSec ban is stored in the form `moat set add` stores it: an IPv4-mapped address as the
// IPv4 address it carries (a connection to it is judged as IPv4, so the mapped form never
// matched), a Range with host bits as its network; the ban's deletion removes that entry. And
// the loader's warnings about a dynamic set's stored entries name each entry's own line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkPolicySource, formatDiagnostic } from "../../src/config/index.ts";
import { startCrowdsec } from "../../src/daemon/crowdsec.ts";
import { dynamicSets } from "../../src/daemon/dynamic-sets.ts";
import { nodeHost } from "../../src/host/policy-files.ts";
import { crowdsecModel } from "../helpers/crowdsec-model.ts";
import { startLapi } from "../helpers/crowdsec-lapi.ts";

test("a ban on an IPv4-mapped address or a Range with host bits is stored as moat set add stores it", async (t) => {
  const { dir, url, keyFile, cscli } = await startLapi(t);
  const model = crowdsecModel(url, keyFile);
  const logs: string[] = [];
  const sets = dynamicSets({
    dir: join(dir, "store"),
    model: () => model,
    refresh: () => Promise.resolve(),
    generation: () => 1,
    audit: () => {},
    log: (line) => logs.push(line),
  });
  t.after(() => sets.close());
  cscli("decisions", "add", "--ip", "::ffff:10.77.0.15", "--duration", "1h", "--reason", "t");
  cscli("decisions", "add", "--range", "10.77.0.19/30", "--duration", "1h", "--reason", "t");
  const bouncer = startCrowdsec({ model: () => model, sets, log: (line) => logs.push(line) });
  t.after(() => bouncer.close());
  bouncer.applied();

  const entries = () => (sets.list()[0]?.entries ?? []).map((e) => e.entry).sort();
  const until = async (want: string[], what: string) => {
    const end = Date.now() + 15_000;
    const done = () => JSON.stringify(entries()) === JSON.stringify(want);
    while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(entries(), want, `${what}; log:\n${logs.join("\n")}`);
  };
  await until(["10.77.0.15", "10.77.0.16/30"], "the bans as the addresses they match");
  cscli("decisions", "delete", "--ip", "::ffff:10.77.0.15");
  await until(["10.77.0.16/30"], "the deleted mapped ban leaves the set");
  cscli("decisions", "delete", "--range", "10.77.0.19/30");
  await until([], "the deleted range leaves the set");
});

test("the loader's warnings on a dynamic set's stored entries name each entry's line", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-dynpos-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "sets"));
  const store = join(dir, "sets", "banned.dynamic");
  // as an older moat stored them: the mapped form and host bits as written
  writeFileSync(store, "203.0.113.9\n\n::ffff:192.0.2.1 # expires 9999999999\n  10.1.2.3/24\n");
  const policy = `version: 1
mode: prevent
sets:
  banned: { dynamic: true }
rules:
  - name: banned
    direction: ingress
    action: block
    layer3: { remote: [set:banned] }
`;
  const got = checkPolicySource(policy, join(dir, "p.yaml"), {
    ...nodeHost,
    setStore: join(dir, "sets"),
  });
  assert.deepEqual(got.diagnostics.map(formatDiagnostic), [
    `${store}:3:1 sets.banned: warning: '::ffff:192.0.2.1' is an IPv4-mapped IPv6 address: moat judges connections to such addresses as IPv4, so this entry never matches; write the IPv4 address (192.0.2.1)`,
    `${store}:4:3 sets.banned: warning: '10.1.2.3/24' has host bits set: it means 10.1.2.0/24`,
  ]);
});
