// A local decision is judged before every rule of the policy file (docs/policy.md, "Local
// decisions"), so one for incoming connections to one executable holds whatever the file's rules
// are. Here the file's first rule judges incoming connections by client port: the evaluator lets
// the peer in by the decision, and so should the daemon once the decision is made.
import { test } from "node:test";
import assert from "node:assert/strict";
import { realpathSync } from "node:fs";
import { parsePolicy, type LocalDecision } from "../../src/config/index.ts";
import type { DecisionBody } from "../../src/api/index.ts";
import { evaluate } from "../../src/policy/evaluator.ts";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { peerConnect, serveIn } from "../helpers/accept-lab.ts";
import { http } from "../helpers/api-client.ts";

// Debian's python3 (the one on PATH may be a pyenv shim script)
const PYTHON = realpathSync("/usr/bin/python3");
const PORT = 7401;

test("an ingress decision for the server's executable is made and lets the peer in when the file's first rule judges by source port", async (t) => {
  const cg = cgroupForTest(t, "decsport");
  let text = "";
  const lab = await startCgroupLab(
    cg,
    "decision after source port",
    (l) =>
      (text = `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cg.cgroup} }
rules:
  - { name: low-client-ports, direction: ingress, action: block, layer4: { protocol: tcp, source_port: [0-1023] } }
`),
    [],
  );
  const server = await serveIn(lab.b, cg.dir, [`tcp:${PORT}`], { exe: PYTHON });
  cg.onClose(() => server.stop());
  assert.equal(peerConnect(lab.a, "tcp", lab.v4.b, PORT), "timeout", "the default blocks the peer");

  const body: DecisionBody = {
    action: "allow",
    direction: "ingress",
    remote: lab.v4.a,
    protocol: "tcp",
    port: PORT,
    process: { path: PYTHON },
    lifetime: "forever",
  };
  // what the evaluator says of the peer's connection with the decision made
  const decision: LocalDecision = { ...body, id: "d1", created: new Date().toISOString(), by: "t" };
  const expected = evaluate(
    { ...parsePolicy(text, "p.yaml"), decisions: [decision] },
    {
      direction: "ingress",
      family: 4,
      protocol: "tcp",
      local: { ip: lab.v4.b, port: PORT },
      remote: { ip: lab.v4.a, port: 40000 },
      process: {
        pid: server.pid,
        name: "python3",
        path: PYTHON,
        user: 0,
        userName: "root",
        cgroup: cg.cgroup,
        container: null,
      },
    },
  );
  assert.equal(expected.verdict, "allowed");
  assert.equal(expected.rule, "decision:d1");

  const reply = await http(
    { socketPath: lab.apiSocket },
    "POST",
    "/v1/decisions",
    JSON.stringify(body),
  );
  assert.equal(reply.status, 200, `moat decisions add: ${reply.body}`);
  // the server answers with its name (python3, or python3.11 for the versioned executable)
  assert.match(peerConnect(lab.a, "tcp", lab.v4.b, PORT), new RegExp(`^python3[.\\d]* ${PORT}$`));
});
