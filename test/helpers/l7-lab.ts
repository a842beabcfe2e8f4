// What the L7 relay's lab tests share: a TLS server in the peer namespace (openssl s_server, a
// certificate made here), the daemon's stored events, and waiting for a condition.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { spawnLines } from "./child.ts";
import type { MoatLab } from "./moat-lab.ts";
import type { Lab } from "./netns.ts";
import { MOAT } from "./paths.ts";

export interface EventJson {
  type: string;
  rule?: string;
  hook?: string;
  reason?: string;
  remote?: { ip: string; port: number; names?: string[] };
  process?: { name: string } | null;
  layer7?: { tls?: { sni?: string; certificate?: { source?: string } } } | null;
  relay?: { splice: string };
}

export function storedEvents(lab: MoatLab): EventJson[] {
  const r = spawnSync(
    MOAT,
    ["events", "--json", "--limit", "1000", "--api", `unix:${lab.apiSocket}`],
    { encoding: "utf8", timeout: 20_000 },
  );
  return r.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as EventJson);
}

export async function until<T>(what: string, probe: () => T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A TLS server in namespace a on every address, port 443, with a certificate made here. */
export async function tlsServer(lab: Lab, dir: string) {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const made = spawnSync("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=allowed.moat.test",
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  assert.equal(made.status, 0, String(made.stderr));
  const server = spawnLines("ip", [
    "netns",
    "exec",
    lab.a,
    "openssl",
    "s_server",
    "-quiet",
    "-accept",
    "443",
    "-cert",
    cert,
    "-key",
    key,
    "-www",
  ]);
  // s_server says nothing when quiet: wait until it accepts
  await until("s_server listening", () => {
    const r = spawnSync("ip", ["netns", "exec", lab.a, "ss", "-Hltn", "sport = :443"], {
      encoding: "utf8",
    });
    return r.stdout.includes(":443") ? true : undefined;
  });
  return server;
}
