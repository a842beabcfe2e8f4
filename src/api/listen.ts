// Where the API listens: a root-only unix socket (directory 0700, socket 0600) or a TCP port
// (bearer token required, TLS when a certificate is given).
import { lstatSync, unlinkSync } from "node:fs";
import { connect, type Server } from "node:net";
import { basename, dirname, join } from "node:path";
import { trustedDirectory, UnsafeFileError } from "../host/index.ts";
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
  const path = await prepareSocketPath(spec.path);
  // the socket is born 0600 (no moment where another user could connect, and no chmod by path
  // afterwards, which would follow a symlink)
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } finally {
    process.umask(umask);
  }
  return spec;
}

/**
 * The socket's path in its checked directory (src/host/trusted-file.ts: root's own, which group
 * and others cannot write, sticky or not; made 0700 when missing): the directory's owner could
 * otherwise rename the socket and answer root's CLI in its place.
 */
async function prepareSocketPath(socket: string): Promise<string> {
  let dir: string;
  try {
    dir = trustedDirectory(dirname(socket), { what: "API socket directory", create: true });
  } catch (err) {
    if (err instanceof UnsafeFileError) throw new ApiConfigError(err.message);
    throw err;
  }
  const path = join(dir, basename(socket));
  let existing;
  try {
    existing = lstatSync(path);
  } catch {
    return path;
  }
  if (!existing.isSocket()) throw new ApiConfigError(`${socket} exists and is not a socket`);
  if (await answers(path))
    throw new ApiConfigError(`another process (a running moat?) is listening on ${socket}`);
  unlinkSync(path); // left over from a daemon that died
  return path;
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
