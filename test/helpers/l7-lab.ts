// What the L7 relay's lab tests share: a TLS server in the peer namespace (openssl s_server, a
// certificate made here), the daemon's stored events, and waiting for a condition.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { spawnLines } from "./child.ts";
import type { MoatLab } from "./moat-lab.ts";
import type { Lab } from "./netns.ts";
import { storedEvents as stored, until } from "./stored-events.ts";

export interface EventJson {
  type: string;
  rule?: string;
  hook?: string;
  reason?: string;
  remote?: { ip: string; port: number; names?: string[] };
  process?: { name: string } | null;
  layer7?: {
    tls?: { sni?: string; version?: string; certificate?: CertificateJson; unseen?: string[] };
    http?: { method?: string; host?: string; path?: string; version?: string; status?: number };
    ssh?: { version?: string; host_key?: string };
  } | null;
  relay?: { splice: string };
}

export interface CertificateJson {
  subject_cn?: string;
  sans?: string[];
  issuer?: string;
  valid?: boolean;
  not_after?: string;
  fingerprint?: string;
  source?: string;
}

/** The daemon's first stdout line (its event sink) matching `pattern`, in any order. */
export const daemonSaid = (lab: MoatLab, pattern: RegExp): Promise<string> =>
  until(`the daemon to say ${pattern}`, () => lab.daemon.lines.find((l) => pattern.test(l))).catch(
    (err: Error) => {
      const last = lab.daemon.lines
        .filter((l) => !l.startsWith("attached "))
        .slice(-30)
        .join("\n");
      throw new Error(`${err.message}; the daemon's last lines:\n${last}`);
    },
  );

export { until } from "./stored-events.ts";

export const storedEvents = (lab: MoatLab): EventJson[] => stored<EventJson>(lab);

/**
 * A TLS server in namespace a on every address, port `port` (443), with a certificate made here;
 * `extra` as for sServer (-6: IPv6).
 */
export async function tlsServer(lab: Lab, dir: string, port = 443, extra: string[] = []) {
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
  return sServer(lab, port, cert, key, extra);
}

/**
 * openssl s_server in namespace a on every address, answering HTTP (-www) with this certificate
 * and key; `extra` adds arguments (-cert_chain FILE, -tls1_2). Resolves once it accepts.
 */
export async function sServer(
  lab: Lab,
  port: number,
  cert: string,
  key: string,
  extra: string[] = [],
) {
  const server = spawnLines("ip", [
    "netns",
    "exec",
    lab.a,
    "openssl",
    "s_server",
    "-quiet",
    "-accept",
    String(port),
    "-cert",
    cert,
    "-key",
    key,
    "-www",
    ...extra,
  ]);
  // s_server says nothing when quiet: wait until it accepts
  try {
    await until("s_server listening", () => {
      const r = spawnSync("ip", ["netns", "exec", lab.a, "ss", "-Hltn", `sport = :${port}`], {
        encoding: "utf8",
      });
      return r.stdout.includes(`:${port}`) ? true : undefined;
    });
  } catch (err) {
    server.kill();
    throw new Error(`${(err as Error).message}: ${server.stderr.join("\n")}`);
  }
  return server;
}
