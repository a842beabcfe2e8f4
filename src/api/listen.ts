// Where the API listens: a root-only unix socket (directory 0700, socket 0600) or a TCP port
// (bearer token required, TLS when a certificate is given).
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { connect, type Server } from "node:net";
import { dirname } from "node:path";
import { ApiConfigError } from "./auth.ts";

export type ListenSpec =
  { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number };

export const DEFAULT_SOCKET = "/run/moat/api.sock";

/** "unix:/PATH", "HOST:PORT", "tcp:HOST:PORT" or "[V6]:PORT". */
export function parseListen(text: string): ListenSpec {
  if (text.startsWith("unix:")) return { kind: "unix", path: text.slice(5) };
  const m = /^(?:tcp:)?(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(text);
  if (!m?.[1] || !m[2] || Number(m[2]) > 65535)
    throw new ApiConfigError(`API listener '${text}' is not unix:/PATH or HOST:PORT`);
  return { kind: "tcp", host: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]) };
}

export function formatListen(spec: ListenSpec): string {
  if (spec.kind === "unix") return `unix:${spec.path}`;
  return spec.host.includes(":") ? `[${spec.host}]:${spec.port}` : `${spec.host}:${spec.port}`;
}

/** Resolves with the bound spec (the real port when 0 was asked for). */
export async function listen(server: Server, spec: ListenSpec): Promise<ListenSpec> {
  if (spec.kind === "tcp") {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(spec.port, spec.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : spec.port;
    return { ...spec, port };
  }
  await prepareSocketPath(spec.path);
  // the socket is born 0600: no moment where another user could connect
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(spec.path, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } finally {
    process.umask(umask);
  }
  chmodSync(spec.path, 0o600);
  return spec;
}

async function prepareSocketPath(path: string): Promise<void> {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new ApiConfigError(`API socket directory ${dir} is not a directory`);
  if ((st.mode & 0o002) !== 0 && (st.mode & 0o1000) === 0)
    throw new ApiConfigError(`API socket directory ${dir} is world-writable`);
  let existing;
  try {
    existing = lstatSync(path);
  } catch {
    return;
  }
  if (!existing.isSocket()) throw new ApiConfigError(`${path} exists and is not a socket`);
  if (await answers(path))
    throw new ApiConfigError(`another process (a running moat?) is listening on ${path}`);
  unlinkSync(path); // left over from a daemon that died
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
