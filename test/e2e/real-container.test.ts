// Process rules and attribution with a real container runtime: Debian's dockerd (its own roots in
// a temp dir, started in the namespace moat guards) runs two busybox containers on the host
// network. A rule blocks one of them, by container name, from the peer's web port: its busybox
// wget fails at once with EPERM, while the other container gets the page. The events of both
// carry the container's 64-hex id, name and image, read from that dockerd's own state files
// (`moat run --docker-root`).
//
// No real Docker is a failure, not a skip: the error says what to install.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { startMoatLab, startPeerServers, type MoatLab } from "../helpers/moat-lab.ts";
import { startDockerLab, type DockerLab, type RealContainer } from "../helpers/docker-lab.ts";
import type { LineChild } from "../helpers/child.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { http } from "../helpers/api-client.ts";
import { tagFor } from "../helpers/netns.ts";
import { cgroup2Mount } from "../../src/datapath/prerequisites.ts";

const IMAGE = "moat-busybox:test";
const NAME = "real container";

/** What a Docker test could change on the host, to compare before and after. */
function hostState(): Record<string, string> {
  const out = (cmd: string, args: string[]) =>
    spawnSync(cmd, args, { encoding: "utf8" }).stdout ?? "";
  const dockerRules = (table: string) =>
    out("iptables", ["-w", "-t", table, "-S"])
      .split("\n")
      .filter((l) => l.includes("DOCKER"))
      .join("\n");
  return {
    ipForward: readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim(),
    docker0: String(existsSync("/sys/class/net/docker0")),
    iptablesFilter: dockerRules("filter"),
    iptablesNat: dockerRules("nat"),
    dockerCgroup: String(existsSync(`${cgroup2Mount() ?? ""}/docker`)),
    etcDockerKey: String(existsSync("/etc/docker/key.json")),
  };
}

interface StoredEvent {
  type: string;
  rule: string;
  hook: string;
  remote: { ip: string; port: number };
  process: {
    name: string;
    cgroup: string;
    container: { id: string; name: string; image: string } | null;
  } | null;
}

test("real Docker containers: a rule by container name, events with the container", async (t) => {
  const before = hostState();
  // what is up so far, for the clean-up on every exit path
  const up: { docker?: DockerLab; lab?: MoatLab; peer?: LineChild } = {};
  const containers: RealContainer[] = [];
  let closing: Promise<string[]> | undefined;
  const closeAll = () =>
    (closing ??= (async () => {
      up.peer?.kill();
      const left = (await up.docker?.close()) ?? [];
      await up.lab?.close();
      return left;
    })());
  t.after(closeAll);

  const started = performance.now();
  const lab = await startMoatLab(
    NAME,
    (l) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: / }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - { name: no-web-for-blocked-one, direction: egress, action: block, process: { container: { name: blocked-one } }, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: tcp, port: [80] } }
  - { name: web-for-busybox, direction: egress, action: allow, log: true, process: { container: { image: "moat-busybox:*" } }, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: tcp, port: [80] } }
`,
    [],
    {
      // dockerd in moat's namespace b: --network host containers connect out through its veth
      beforeDaemon: async (l) => {
        const t0 = performance.now();
        const d = (up.docker = await startDockerLab(tagFor(NAME), l.b));
        const ready = performance.now();
        d.importBusybox(IMAGE);
        for (const name of ["blocked-one", "allowed-one"])
          containers.push(d.run(name, IMAGE, ["sleep", "600"]));
        const ms = (a: number, b: number) => `${Math.round(b - a)} ms`;
        t.diagnostic(
          `dockerd ready in ${ms(t0, ready)}, image and two containers in ${ms(ready, performance.now())}`,
        );
        return ["--docker-root", d.dataRoot];
      },
    },
  );
  up.lab = lab;
  const labMs = performance.now() - started;
  up.peer = await startPeerServers(lab, ["tcp:80"]);
  const { docker } = up;
  const [blocked, allowed] = containers;
  assert.ok(docker && blocked && allowed);
  const url = `http://${lab.v4.a}/`;
  // busybox wget without -T: Debian 12's busybox-static 1.35 wget segfaults with a timeout set
  const wget = ["wget", "-q", "-O", "-", url];
  t.diagnostic(`the lab (namespaces, Docker, moat) up in ${Math.round(labMs)} ms`);

  await t.test("the containers' processes are in /docker/<id> of the cgroup v2 hierarchy", () => {
    for (const c of [blocked, allowed]) {
      assert.match(c.id, /^[0-9a-f]{64}$/);
      assert.equal(c.cgroup, `/docker/${c.id}`);
    }
  });

  await t.test("the blocked container's wget fails at once with EPERM", async () => {
    const r = docker.exec("blocked-one", wget);
    assert.equal(r.status, 1, `wget's exit status; stderr: ${r.stderr}`);
    assert.equal(
      r.stderr.trim(),
      `wget: can't connect to remote host (${lab.v4.a}): Operation not permitted`,
    );
    assert.equal(r.stdout, "");
    await lab.daemon.waitFor(
      /BLOCKED egress tcp .*:80 .*by rule no-web-for-blocked-one \(wget pid \d+\)/,
    );
  });

  await t.test("the other container gets the page", async () => {
    const r = docker.exec("allowed-one", wget);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "port 80\n");
    await lab.daemon.waitFor(/ALLOWED egress tcp .*:80 .*by rule web-for-busybox \(wget pid \d+\)/);
  });

  await t.test("a process outside the containers: neither rule names it", () => {
    const r = runIn(lab.b, null, ["wget", "-q", "-O", "-", "-T", "3", "-t", "1", url]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "port 80\n");
  });

  await t.test("the events carry the container's id, name and image", async () => {
    const where = { socketPath: lab.apiSocket };
    const stored = async (query: string): Promise<StoredEvent[]> => {
      for (let i = 0; ; i++) {
        const reply = await http(where, "GET", `/v1/events?${query}`);
        assert.equal(reply.status, 200, reply.body);
        const { events } = JSON.parse(reply.body) as { events: StoredEvent[] };
        if (events.length > 0 || i === 50) return events;
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    for (const [c, type, rule, hook] of [
      [blocked, "blocked", "no-web-for-blocked-one", "connect"],
      [allowed, "allowed", "web-for-busybox", "tc"],
    ] as const) {
      const events = await stored(`container=${c.name}&type=${type}`);
      assert.equal(events.length, 1, `${type} events of ${c.name}: ${JSON.stringify(events)}`);
      const [e] = events;
      assert.deepEqual(
        [e?.rule, e?.hook, e?.remote, e?.process?.name, e?.process?.cgroup],
        [rule, hook, { ip: lab.v4.a, port: 80 }, "wget", c.cgroup],
      );
      assert.deepEqual(e?.process?.container, { id: c.id, name: c.name, image: IMAGE });
      // the API's container filter takes an id prefix as well as a name
      const byId = await stored(`container=${c.id.slice(0, 12)}&type=${type}`);
      assert.equal(byId.length, 1);
    }
  });

  await t.test("nothing is left behind", async () => {
    const ns = [lab.a, lab.b];
    const links = [lab.ifA, lab.ifB];
    const dir = docker.dir;
    const t0 = performance.now();
    const leftovers = await closeAll();
    t.diagnostic(`clean-up took ${Math.round(performance.now() - t0)} ms`);
    assert.deepEqual(leftovers, []);
    assert.equal(existsSync(dir), false);
    assert.deepEqual(hostState(), before);
    const netns = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout;
    for (const n of ns) assert.ok(!netns.includes(n), `netns ${n} is still there`);
    for (const l of links) assert.equal(existsSync(`/sys/class/net/${l}`), false);
    assert.ok(
      !readFileSync("/proc/self/mountinfo", "utf8").includes(dir),
      "a mount under the temp dir",
    );
  });
});
