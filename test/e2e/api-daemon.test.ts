// The real daemon driven through its API with the CLI a user would type: status, stored and live
// events of real traffic, policy apply (a bad policy refused, the running generation kept; a good
// one applied and audited with who made it), mode switch without restart; and a non-root user
// can neither reach the API socket nor read the audit log.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { startMoatLab } from "../helpers/moat-lab.ts";
import { spawnLines } from "../helpers/child.ts";
import { MOAT } from "../helpers/paths.ts";
import type { Lab } from "../helpers/netns.ts";
import { until, untilTrue } from "../helpers/until.ts";

/** How long a wait for the daemon's answers may take (asked every 100 ms). */
const WAIT_MS = 5000;

function policy(lab: Lab & { auditPath: string }, web: boolean, mode = "prevent"): string {
  return `version: 1
mode: ${mode}
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${lab.ifB}] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
${web ? "  - name: web\n    direction: ingress\n    action: allow\n    layer4: { protocol: tcp, port: [80] }\n" : ""}`;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function moat(args: string[], asNobody = false): Run {
  const [cmd, argv] = asNobody
    ? ["setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", MOAT, ...args]]
    : [MOAT, args];
  const r = spawnSync(cmd, argv, { encoding: "utf8", timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Ev {
  type: string;
  rule: string;
  remote: { ip: string };
  local: { port: number };
}

test("status, events, policy apply and mode switch through the API of a running daemon", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l, false));
  t.after(() => lab.close());
  const api = ["--api", `unix:${lab.apiSocket}`];
  const status = () =>
    JSON.parse(moat(["status", "--json", ...api]).stdout) as {
      mode: string;
      generation: number;
      attached: { interface: string; hook: string; why?: string }[];
      conntrack: { entries: number; capacity: number };
    };

  const before = status();
  assert.equal(before.mode, "prevent");
  // the ingress hook says why it was chosen: a veth gets tc ingress
  assert.deepEqual(
    before.attached.map((a) => `${a.interface} ${a.hook}${a.why ? ` ${a.why}` : ""}`).sort(),
    [`${lab.ifB} tc-egress`, `${lab.ifB} tc-ingress auto: veth -> tc`],
  );
  const text = moat(["status", ...api]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^mode: prevent$/m);
  assert.match(
    text.stdout,
    new RegExp(`^attached: .*${lab.ifB} tc-ingress tcx \\(auto: veth -> tc\\)`, "m"),
  );

  // live subscription first, then traffic: a blocked connection to port 80
  const follow = spawnLines(MOAT, ["events", "--follow", "--json", "--type", "blocked", ...api]);
  t.after(() => follow.kill("SIGKILL"));
  await untilTrue(
    "the subscription",
    () => follow.stderr.some((l) => l.startsWith("following live events")),
    WAIT_MS,
    100,
  );
  assert.notEqual(lab.curl(`http://${lab.v4.b}:80/`).status, 0, "port 80 is blocked");
  const live = JSON.parse(await follow.waitFor(/"local":\{"ip":"[^"]+","port":80\}/)) as Ev;
  assert.equal(live.type, "blocked");
  assert.equal(live.rule, "default");
  assert.equal(live.remote.ip, lab.v4.a);

  // the same event from the history store
  const stored = await until(
    "the blocked event in history",
    () => {
      const r = moat([
        "events",
        "--json",
        "--type",
        "blocked",
        "--remote",
        `${lab.v4.a}/32`,
        ...api,
      ]);
      const events = r.stdout
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Ev);
      return events.find((e) => e.local.port === 80);
    },
    WAIT_MS,
    100,
  );
  assert.equal(stored.rule, "default");

  // a bad policy is refused with its position; the running generation stays
  const bad = join(lab.dir, "bad.yaml");
  writeFileSync(
    bad,
    "version: 1\nrules:\n  - name: Web\n    direction: ingress\n    action: allow\n",
  );
  // its errors name the file given, where their lines and columns are
  const refused = moat(["policy", "apply", bad, ...api]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`^${bad}:3:11 rules\\[0\\]\\.name: `, "m"));
  const invalid = moat(["policy", "validate", bad, ...api]);
  assert.equal(invalid.code, 1);
  assert.match(invalid.stdout, new RegExp(`^${bad}:3:11 rules\\[0\\]\\.name: `, "m"));
  assert.match(invalid.stdout, new RegExp(`^${bad}: 1 error$`, "m"));
  assert.match(refused.stderr, new RegExp(`generation ${before.generation} keeps running`));
  assert.equal(status().generation, before.generation);

  // a good one is applied atomically and audited with who applied it
  // (with a long comment: a running text this long is kept deflated, and read back as it was)
  const good = join(lab.dir, "good.yaml");
  const goodText = policy(lab, true) + `# the web rule's note: café ✓\n`.repeat(3000);
  writeFileSync(good, goodText);
  const applied = moat(["policy", "apply", good, ...api]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.equal(applied.stdout.trim(), `applied ${good}: generation ${before.generation + 1}`);
  assert.equal(lab.curl(`http://${lab.v4.b}:80/`).status, 0, "port 80 is open now");
  await lab.auditHas(
    new RegExp(
      `POLICY APPLIED policy by unix uid 0 pid \\d+: generation ${before.generation + 1}, mode prevent`,
    ),
  );

  const shown = moat(["policy", "show", "--json", ...api]);
  assert.equal((JSON.parse(shown.stdout) as { text: string }).text, goodText);

  // mode switch: detect lets the blocked port through, without a restart
  assert.notEqual(lab.curl(`http://${lab.v4.b}:443/`).status, 0, "443 blocked in prevent");
  assert.equal(moat(["mode", ...api]).stdout, "mode: prevent (the policy file's)\n");
  assert.equal(
    moat(["set", "list", ...api]).stdout,
    "the running policy has no dynamic set or feed\n",
  );
  const switched = moat(["mode", "detect", ...api]);
  assert.equal(switched.code, 0, switched.stderr);
  assert.equal(status().mode, "detect");
  // `moat mode` alone says which mode runs, and that it is a local decision over the file's
  assert.match(
    moat(["mode", ...api]).stdout,
    /^mode: detect \(set by unix uid 0 pid \d+ at \S+ over the policy file's mode; 'moat mode policy' goes back to it\)$/m,
  );
  assert.equal(lab.curl(`http://${lab.v4.b}:443/`).status, 0, "443 passes in detect");
  // the connections just made are in the table whose entries status counts
  await untilTrue(
    "status counts the tracked connections",
    () => status().conntrack.entries >= 2,
    WAIT_MS,
    100,
  );
  await lab.auditHas(/POLICY APPLIED mode detect by unix uid 0 pid \d+/);
  await lab.daemon.waitFor(/POLICY APPLIED mode detect by unix uid 0 pid \d+/);

  // a non-root user: EACCES on the socket and on the audit log, even where directories let it pass
  chmodSync(lab.dir, 0o755);
  chmodSync(dirname(lab.auditPath), 0o755);
  const nobody = moat(["status", ...api], true);
  assert.equal(nobody.code, 1);
  assert.equal(
    nobody.stderr.trim(),
    `moat: cannot reach the moat daemon at unix:${lab.apiSocket}: EACCES (the API socket is root-only; run as root)`,
  );
  const cat = spawnSync(
    "setpriv",
    ["--reuid=65534", "--regid=65534", "--clear-groups", "cat", lab.auditPath],
    { encoding: "utf8" },
  );
  assert.equal(cat.status, 1);
  assert.match(cat.stderr, /Permission denied/);
});
