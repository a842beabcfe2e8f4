// The running daemon, through its API socket, with a peer scanning it from its own namespace: a
// decision request with a misspelt key (`ports`) is refused naming it and opens nothing; the
// request as documented (`port`) opens that port alone. A policy whose attach.cgroup does not
// exist is refused by PUT /v1/policy at the key's line and column, and the running one stays.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startMoatLab } from "../helpers/moat-lab.ts";
import { http } from "../helpers/api-client.ts";
import type { Lab } from "../helpers/netns.ts";

const policy = (lab: Lab & { auditPath: string }, cgroup = "") => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${lab.ifB}]${cgroup ? `, cgroup: ${cgroup}` : ""} }
logging: { audit: { path: ${lab.auditPath} } }
`;

const PORTS = [22, 80, 443, 8080];

test("a misspelt decision key is refused and opens nothing; PUT refuses a missing cgroup at its key", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l));
  t.after(() => lab.close());
  const where = { socketPath: lab.apiSocket };
  const decide = (extra: string) =>
    http(
      where,
      "POST",
      "/v1/decisions",
      `{"action":"allow","direction":"ingress","remote":"${lab.v4.a}","protocol":"tcp",${extra}}`,
    );
  const open = () => PORTS.filter((p) => lab.scan(PORTS).get(p) === "open");

  const misspelt = await decide('"ports":[8080],"lifetime":"1h"');
  assert.equal(misspelt.status, 422, misspelt.body);
  assert.match(misspelt.body, /unknown key ports/);
  const expires = await decide('"port":8080,"lifetime":"forever","expires":"2001-01-01T00:00:00Z"');
  assert.equal(expires.status, 422, expires.body);
  assert.match(expires.body, /expires: set by moat/);
  assert.deepEqual(open(), []);

  const made = await decide('"port":8080,"lifetime":"1h"');
  assert.equal(made.status, 200, made.body);
  assert.deepEqual(open(), [8080]);

  const missing = `/no-such-cgroup-${lab.tag}`;
  const put = await http(where, "PUT", "/v1/policy", policy(lab, missing));
  assert.equal(put.status, 422, put.body);
  assert.match(
    put.body,
    new RegExp(`:4:\\d+ attach\\.cgroup: attach\\.cgroup ${missing}: \\S+ does not exist`),
  );
  assert.deepEqual(open(), [8080], "the running policy and its decision stay");
});
