// IDS signatures end to end: curl in namespace a sends real HTTP requests to the test server in
// b, where moat runs. In detect (ids.mode's default) a signature on the request and one on the
// reply fire once each per connection, v4 and v6, and curl gets its answer; under ids.mode prevent
// a drop signature cuts a long download after its request reached the server (curl sees the
// connection reset) while the next request without the pattern goes through. Each UDP datagram
// is matched alone, as Suricata does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { startMoatLab } from "../helpers/moat-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { http } from "../helpers/api-client.ts";
import { idsEvents } from "../helpers/stored-events.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";

function policy(lab: Lab, ids: string): string {
  return `version: 1
mode: detect
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${guardedInterface(lab.ifB)}] }
ids:
${ids}
`;
}

test("ids detect: a signature fires on a real HTTP request and one on its reply, v4 and v6", async (t) => {
  const lab = await startMoatLab(t.name, (l) => {
    // beside the policy, in the lab's own folder (a rules file root cannot trust is refused)
    writeFileSync(
      join(dirname(dirname(l.auditPath)), "local.rules"),
      [
        "# the reply of the test server",
        'alert tcp any 80 -> any any (msg:"test server reply"; flow:to_client; content:"port 80"; sid:2001; rev:1;)',
        'alert tcp any any -> any 80 (msg:"uses pcre"; content:"x"; pcre:"/x/"; sid:2002;)',
      ].join("\n"),
    );
    return policy(
      l,
      `  rules_file: local.rules
  rules:
    - 'alert tcp $EXTERNAL_NET any -> $HOME_NET 80 (msg:"admin page probe"; flow:established,to_server; content:"GET"; depth:3; content:"/ADMIN"; nocase; distance:1; within:8; classtype:web-application-attack; sid:1001;)'
    - 'alert tcp any any -> any 22 (msg:"never: other port"; content:"GET"; sid:1002;)'`,
    );
  });
  try {
    const v4 = lab.curl(`http://${lab.v4.b}/Admin/login`);
    assert.equal(v4.status, 0, "detect never drops: curl gets its answer");
    assert.equal(v4.body, "port 80\n");
    const v6 = lab.curl(`http://[${lab.v6.b}]/admin`);
    assert.equal(v6.status, 0);
    assert.equal(lab.curl(`http://${lab.v4.b}/other`).status, 0, "no probe: only the reply fires");

    const events = await idsEvents(lab, 5);
    const seen = events.map((e) => `${e.type} ${e.rule} ${e.ids?.flow} ${e.remote.ip}`).sort();
    assert.deepEqual(seen, [
      `detected ids:1001 to_server ${lab.v4.a}`,
      `detected ids:1001 to_server ${lab.v6.a}`,
      `detected ids:2001 to_client ${lab.v4.a}`,
      `detected ids:2001 to_client ${lab.v4.a}`,
      `detected ids:2001 to_client ${lab.v6.a}`,
    ]);
    const probe = events.find((e) => e.rule === "ids:1001" && e.remote.ip === lab.v4.a);
    assert.ok(probe);
    assert.equal(probe.direction, "ingress");
    assert.equal(probe.mode, "detect");
    assert.deepEqual(probe.local, { ip: lab.v4.b, port: 80 });
    assert.equal(probe.ids?.msg, "admin page probe");
    assert.equal(probe.ids?.classtype, "web-application-attack");
    assert.equal(probe.ids?.action, "alert");
    assert.match(probe.ids?.source ?? "", /policy\.yaml:8:8$/);
    // the daemon's line for it
    await lab.daemon.waitFor(
      /DETECTED ingress tcp .* by rule ids:1001 \(ids sid 1001 "admin page probe" to_server\)/,
    );
    // the refused signature is reported
    assert.ok(
      lab.daemon.lines.some((l) =>
        /^ids: 3 signatures on the first 512 bytes of every flow, mode detect; 1 refused/.test(l),
      ),
      lab.daemon.lines.join("\n"),
    );
    const metrics = (await http({ socketPath: lab.apiSocket }, "GET", "/metrics")).body;
    assert.match(metrics, /moat_ids_matches_total\{outcome="detected"\} 5/);
    assert.match(metrics, /moat_datapath_packets_total\{counter="idsCopied"\} [1-9]/);
  } finally {
    await lab.close();
  }
});

test("ids prevent: a drop signature cuts the connection after its request reached the server", async (t) => {
  const lab = await startMoatLab(t.name, (l) =>
    policy(
      l,
      `  mode: prevent
  rules:
    - 'drop tcp any any -> any 80 (msg:"bulk download"; flow:to_server; content:"/stream/"; sid:3001;)'
    - 'alert tcp any any -> any 80 (msg:"any request"; flow:to_server; content:"HTTP/1.1"; sid:3002;)'`,
    ),
  );
  try {
    // 2 GB: far more than goes by before the cut
    const cut = lab.curl(`http://${lab.v4.b}/stream/2000000000`, ["-o", "/dev/null"]);
    const after = lab.curl(`http://${lab.v4.b}/`);
    const events = await idsEvents(lab, 3);
    assert.notEqual(cut.status, 0, "the download is cut");
    assert.notEqual(cut.status, 28, `by a reset, not curl's time limit: ${JSON.stringify(events)}`);
    assert.equal(after.status, 0, "the next request, without the pattern, goes through");
    assert.equal(after.body, "port 80\n");

    const blocked = events.filter((e) => e.rule === "ids:3001");
    assert.equal(blocked.length, 1);
    assert.equal(blocked[0]?.type, "blocked");
    assert.equal(blocked[0]?.mode, "prevent");
    assert.equal(blocked[0]?.ids?.cut, true);
    // an alert signature reports only, even under prevent
    const alerts = events.filter((e) => e.rule === "ids:3002");
    assert.deepEqual(
      alerts.map((e) => e.type),
      ["detected", "detected"],
    );
  } finally {
    await lab.close();
  }
});

/** Sends each UDP flow's datagrams (argv 2: JSON [[source port, [payload, ...]], ...]) to argv 1:53. */
const DATAGRAMS = `
import json, socket, sys, time
for port, payloads in json.loads(sys.argv[2]):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", port))
    for p in payloads:
        u.sendto(p.encode(), (sys.argv[1], 53))
        time.sleep(0.1)
    u.close()
print("sent")
`;

test("ids detect: each UDP datagram is matched alone, from its own first byte", async (t) => {
  const lab = await startMoatLab(t.name, (l) =>
    policy(
      l,
      `  rules:
    - 'alert udp any any -> any 53 (msg:"split"; content:"SPLITUDP"; sid:4001;)'
    - 'alert udp any any -> any 53 (msg:"second datagram"; content:"DGRAM2"; depth:6; sid:4002;)'
    - 'alert udp any any -> any 53 (msg:"no Host"; content:"UNEG"; content:!"Host"; sid:4003;)'`,
    ),
  );
  try {
    const flows = [
      [41001, ["xxSPLIT", "UDPxx"]],
      [41002, ["first", "DGRAM2 rest"]],
      [41003, ["UNEG a", "Host"]],
    ];
    const sent = spawnSync(
      "ip",
      ["netns", "exec", lab.a, "python3", "-c", DATAGRAMS, lab.v4.b, JSON.stringify(flows)],
      { encoding: "utf8", timeout: 30_000 },
    );
    assert.equal(sent.stdout.trim(), "sent", sent.stderr);
    const events = await idsEvents(lab, 2);
    const seen = events.map((e) => `${e.type} ${e.rule} ${e.remote.port}`).sort();
    assert.deepEqual(seen, ["detected ids:4002 41002", "detected ids:4003 41003"]);
  } finally {
    await lab.close();
  }
});
