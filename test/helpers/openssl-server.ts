// openssl s_server on loopback for the TLS handler tests: a real TLS server with a certificate
// made by test-certificates.ts, answering HTTP.
import { spawn, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { freePort } from "./ports.ts";
import type { TestCertificates } from "./test-certificates.ts";

export interface SServer {
  port: number;
  child: ChildProcess;
}

/**
 * openssl s_server on 127.0.0.1 answering HTTP (-www) with `certs`' leaf `leaf`, then the
 * intermediate (unless `chain` is false), and only `version`; once it accepts connections.
 */
export async function startSServer(
  certs: TestCertificates,
  leaf: string,
  version: "tls1_2" | "tls1_3",
  chain = true,
): Promise<SServer> {
  const port = await freePort();
  const { cert, key } = certs.leaf(leaf);
  const args = ["-accept", `127.0.0.1:${port}`, "-cert", cert, "-key", key];
  const chained = chain ? ["-cert_chain", certs.intermediate] : [];
  const child = spawn(
    "openssl",
    ["s_server", ...args, ...chained, `-${version}`, "-www", "-quiet"],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  try {
    await accepting(child, port, leaf);
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  return { port, child };
}

/** Resolves once `port` accepts (s_server says nothing when quiet); rejects if `child` exits. */
function accepting(child: ChildProcess, port: number, leaf: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`s_server ${leaf} exited ${code}`)));
    const ready = () => {
      const probe = connect(port, "127.0.0.1", () => {
        probe.destroy();
        resolve();
      });
      probe.once("error", () => setTimeout(ready, 20));
    };
    ready();
  });
}
