// B7's lab, shared by bench/l7.ts (the whole bench) and bench/l7-cpu.ts (the daemon's CPU alone):
// the policy whose `web` and `tls` rules send a's ports 80 and 443 to the relay, the server's
// certificate, the server (bench/l7-server.ts in namespace a) and the client (bench/l7-client.ts
// in namespace b).
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { spawnLines, type LineChild } from "../test/helpers/child.ts";
import type { MoatLab } from "../test/helpers/moat-lab.ts";
import { NODE, ROOT } from "../test/helpers/paths.ts";
import { runIn } from "./ns-run.ts";

export const SNI = "web.bench.test";

export function l7Policy(
  l: { ifB: string; v4: { a: string }; auditPath: string },
  cgroup: string,
): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - name: web
    direction: egress
    action: allow
    layer3: { remote: [${l.v4.a}] }
    layer4: { protocol: tcp, port: [80] }
    layer7: { http: { host: [${SNI}], trust_host: true } }
  - name: tls
    direction: egress
    action: allow
    layer3: { remote: [${l.v4.a}] }
    layer4: { protocol: tcp, port: [443] }
    layer7: { tls: { sni: [${SNI}, "**.${SNI}"], trust_sni: true, certificate: { subject_cn: "*.bench.test" } } }
  # refusals judged by the relay only: clients outside the cgroup (direct, haproxy) pass
  - { name: other-http, direction: egress, action: block, layer4: { protocol: tcp, port: [80] }, layer7: { http: {} } }
  - { name: other-tls, direction: egress, action: block, layer4: { protocol: tcp, port: [443] }, layer7: { tls: {} } }
`;
}

/** A self-signed certificate for *.bench.test and SNI (its subdomains too), in `dir`. */
export function benchCertificate(dir: string): { cert: string; key: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=*.bench.test",
      "-addext",
      `subjectAltName=DNS:*.bench.test,DNS:${SNI},DNS:*.${SNI}`,
      "-keyout",
      key,
      "-out",
      cert,
    ],
    { stdio: "ignore" },
  );
  return { cert, key };
}

/**
 * bench/l7-server.ts in namespace a (HTTP on 80, HTTPS on 443), once it listens; added to
 * `children` first, so the caller ends it whatever happens.
 */
export async function startL7Server(
  lab: MoatLab,
  tls: { cert: string; key: string },
  children: LineChild[],
): Promise<void> {
  const server = spawnLines("ip", [
    "netns",
    "exec",
    lab.a,
    NODE,
    "--disable-warning=ExperimentalWarning",
    `${ROOT}bench/l7-server.ts`,
    lab.v4.a,
    tls.cert,
    tls.key,
  ]);
  children.push(server);
  await server.waitFor(/^listening$/);
}

/** bench/l7-client.ts in namespace b (in cgroup `where`, or outside any), its JSON result. */
export async function l7Client<T>(lab: MoatLab, where: string | null, args: string[]): Promise<T> {
  const r = await runIn(lab.b, where, [
    NODE,
    "--disable-warning=ExperimentalWarning",
    `${ROOT}bench/l7-client.ts`,
    ...args,
  ]);
  if (r.status !== 0) throw new Error(`l7-client ${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
