// The daemon's DNS wiring: every policy compiles with the proxy's port; a reload fills the new
// slot's name bindings from the proxy's store with the new image's classes before the flip, and
// the proxy follows the live image afterwards; an event's owner gets the names it learned.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PolicyImage } from "../../src/policy/index.ts";
import {
  PolicyLifecycle,
  readPolicyFile,
  type BindingsFor,
} from "../../src/daemon/policy-lifecycle.ts";
import { classesOfImage, datapathBinder, openDnsNames } from "../../src/daemon/dns-names.ts";
import type { Datapath } from "../../src/datapath/index.ts";
import type { NameBinding, NameKey } from "../../src/dns/index.ts";

const POLICY = `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
rules: []
`;

test("a reload fills the new slot from the store with its classes, then the proxy follows it", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), `moat-dns-names-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "policy.yaml");
  writeFileSync(path, POLICY);
  const written: NameBinding[][] = [];
  const unbound: NameKey[][] = [];
  // the datapath's name calls, as the datapath offers them
  const datapath = {
    generation: 1,
    bindNames: (b: NameBinding[]) => (written.push(b), { written: b.length, full: 0 }),
    unbindNames: (k: NameKey[]) => unbound.push(k),
    monotonicNs: () => 1_000_000_000_000n,
    recordNames: () => {},
    forgetNames: () => {},
    originalOf: () => null,
  } as unknown as Datapath;
  const lines: string[] = [];
  const dns = await openDnsNames({
    original: () => null,
    datapath: () => datapath,
    policy: () => null,
    generation: () => 1,
    process: (o) => ({
      pid: o.pid,
      name: o.comm,
      path: "",
      user: o.uid,
      cgroup: "/",
      container: null,
    }),
    report: () => {},
    log: (l) => lines.push(l),
  });
  t.after(() => dns.close());
  const port = dns.proxy?.addresses().udp.port;
  assert.ok(port);
  assert.deepEqual(dns.compileOptions, {
    dnsProxy: { udp: { ip: "127.0.0.1", port }, tcp: { ip: "127.0.0.1", port } },
  });
  assert.match(lines.join("\n"), new RegExp(`dns proxy: listening on 127\\.0\\.0\\.1:${port}`));

  // a name curl learned earlier
  const curl = { cgroupId: 7n, exeIno: 11n, exeDev: 3, uid: 1000 };
  dns.proxy?.store.learn(
    curl,
    ["github.com"],
    [{ ip: "140.82.112.3", ttlSeconds: 60, ownerIndex: 0 }],
    () => 0,
  );

  const calls: { image: PolicyImage; bindings: NameBinding[] }[] = [];
  const target = {
    generation: 1,
    apply(image: PolicyImage, bindings?: BindingsFor) {
      const classes = (
        image as { names?: { classes: { classOf: (n: readonly string[]) => number } } }
      ).names?.classes;
      calls.push({ image, bindings: classes && bindings ? bindings(classes) : [] });
      return { generation: ++this.generation, ms: 0.1 };
    },
  };
  const appliedImages: PolicyImage[] = [];
  const lifecycle = new PolicyLifecycle({
    path,
    initial: await readPolicyFile(path, undefined, dns.compileOptions),
    target,
    plumbing: { prepare: () => ({ commit: () => {}, abandon: () => {} }) },
    audit: () => {},
    log: () => {},
    compile: dns.compileOptions,
    // a known class for github.com, whatever number the compiler gives it
    route: (image) =>
      Object.assign(image, {
        names: {
          classes: { classOf: (n: readonly string[]) => (n.includes("github.com") ? 4 : 0) },
        },
      }),
    bindings: dns.bindingsFor,
    applied: (p) => {
      appliedImages.push(p.image);
      dns.applied(p.model, p.image);
    },
  });
  const result = await lifecycle.reload("SIGHUP");
  assert.equal(result.ok, true, result.errors.join("\n"));
  assert.deepEqual(
    calls[0]?.bindings.map((b) => [b.identity, b.ip, b.nclass]),
    [[curl, "140.82.112.3", 4]],
  );
  assert.equal(appliedImages.length, 1);
  // the proxy now writes with the live image's classes
  const learned = dns.proxy?.store.learn(
    curl,
    ["github.com"],
    [{ ip: "140.82.112.4", ttlSeconds: 60, ownerIndex: 0 }],
    classesOfImage(appliedImages[0] as PolicyImage) ?? (() => 0),
  );
  assert.equal(learned?.[0]?.nclass, 4);
  assert.deepEqual(
    dns.namesOf(
      { pid: 1, uid: 1000, cgroupId: 7n, comm: "curl", exeIno: 11n, exeDev: 3 } as never,
      "140.82.112.3",
    ),
    ["github.com"],
  );
});

test("before the datapath is up the proxy binds nothing and still answers", () => {
  const binder = datapathBinder(() => null);
  assert.deepEqual(binder.bindNames([]), { written: 0, full: 0 });
  assert.equal(typeof binder.monotonicNs(), "bigint");
  binder.unbindNames([]);
});
