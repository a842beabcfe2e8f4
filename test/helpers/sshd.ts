// A real OpenSSH server for tests: its own config, host keys and port, started in the calling
// namespace (or one given), never the system's sshd. Keys are made with ssh-keygen in a
// directory per test; every exit path removes it (call close()).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const SSHD = "/usr/sbin/sshd";

export interface KeyPair {
  path: string;
  /** The public key line (authorized_keys format). */
  pub: string;
  /** "SHA256:..." as `ssh-keygen -l` prints it. */
  fingerprint: string;
}

export function makeKey(dir: string, name: string, type = "ed25519"): KeyPair {
  const path = join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", name, "-f", path]);
  return {
    path,
    pub: readFileSync(`${path}.pub`, "utf8").trim(),
    fingerprint: fingerprint(`${path}.pub`),
  };
}

export function fingerprint(pubPath: string): string {
  const out = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", pubPath], {
    encoding: "utf8",
  });
  return out.split(" ")[1] ?? "";
}

/** Signs `key`'s public half as a host certificate with `ca`; returns the certificate's path. */
export function signHostKey(ca: KeyPair, key: KeyPair): string {
  execFileSync("ssh-keygen", [
    "-q",
    "-s",
    ca.path,
    "-h",
    "-I",
    "moat-test-host",
    `${key.path}.pub`,
  ]);
  return `${key.path}-cert.pub`;
}

export interface Sshd {
  port: number;
  proc: ChildProcess;
  /** sshd's log (it runs with -D -e). */
  log: string[];
  close(): Promise<void>;
}

export interface SshdOptions {
  dir: string;
  hostKeys: KeyPair[];
  /** More sshd_config lines. */
  config?: string[];
  /** Listen address (default 127.0.0.1). */
  address?: string;
  port: number;
  /** Run inside this network namespace. */
  netns?: string;
}

/** Starts sshd in the foreground; resolves once it listens. */
export async function startSshd(o: SshdOptions): Promise<Sshd> {
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const configPath = join(o.dir, `sshd-${o.port}.conf`);
  writeFileSync(
    configPath,
    [
      `ListenAddress ${o.address ?? "127.0.0.1"}:${o.port}`,
      ...o.hostKeys.map((k) => `HostKey ${k.path}`),
      `PidFile none`,
      `UsePAM no`,
      `StrictModes no`,
      `PasswordAuthentication no`,
      `KbdInteractiveAuthentication no`,
      `PermitRootLogin prohibit-password`,
      `LogLevel VERBOSE`,
      ...(o.config ?? []),
      "",
    ].join("\n"),
  );
  const args = ["-D", "-e", "-f", configPath];
  const proc = o.netns
    ? spawn("ip", ["netns", "exec", o.netns, SSHD, ...args], {
        stdio: ["ignore", "ignore", "pipe"],
      })
    : spawn(SSHD, args, { stdio: ["ignore", "ignore", "pipe"] });
  const log: string[] = [];
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`sshd did not listen:\n${log.join("\n")}`)),
      10_000,
    );
    proc.stderr!.setEncoding("utf8").on("data", (text: string) => {
      log.push(...text.split("\n").filter(Boolean));
      if (/Server listening on/.test(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`sshd exited:\n${log.join("\n")}`));
    });
  });
  return {
    port: o.port,
    proc,
    log,
    async close() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      await exited;
    },
  };
}

export interface Capture {
  client: Buffer;
  server: Buffer;
}

/**
 * What a real `ssh` client and a real sshd send each other before authentication: the client
 * runs through a recording relay with `sshArgs` (e.g. -o KexAlgorithms=...), no keys, BatchMode.
 */
export async function captureHandshake(port: number, sshArgs: string[]): Promise<Capture> {
  const client: Buffer[] = [];
  const server: Buffer[] = [];
  let done: () => void = () => {};
  const closed = new Promise<void>((r) => (done = r));
  const tap: Server = createServer((c) => {
    const up = connect(port, "127.0.0.1");
    c.on("data", (d: Buffer) => (client.push(d), up.write(d)));
    up.on("data", (d: Buffer) => (server.push(d), c.write(d)));
    c.on("error", () => {});
    up.on("error", () => {});
    const end = () => (c.destroy(), up.destroy(), done());
    c.on("close", end);
    up.on("close", end);
  });
  await new Promise<void>((r) => tap.listen(0, "127.0.0.1", r));
  const tapPort = (tap.address() as AddressInfo).port;
  const ssh = spawn(
    "ssh",
    [
      ...SSH_QUIET,
      "-o",
      "BatchMode=yes",
      "-o",
      "PubkeyAuthentication=no",
      "-p",
      String(tapPort),
      ...sshArgs,
      "nobody@127.0.0.1",
      "true",
    ],
    { stdio: "ignore" },
  );
  await new Promise<void>((r) => ssh.once("exit", () => r()));
  await closed;
  tap.close();
  return { client: Buffer.concat(client), server: Buffer.concat(server) };
}

/** Options of every test ssh client: no known_hosts, no user config, no agent. */
export const SSH_QUIET = [
  "-F",
  "/dev/null",
  "-o",
  "StrictHostKeyChecking=no",
  "-o",
  "UserKnownHostsFile=/dev/null",
  "-o",
  "IdentityAgent=none",
  "-o",
  "ConnectTimeout=5",
];

/** ssh's arguments to log in as root at `host`:`port` with the key at `identity` only and run
 * `command`. */
export function sshLoginArgs(
  identity: string,
  host: string,
  port: number,
  command: string,
): string[] {
  return [
    ...SSH_QUIET,
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-i",
    identity,
    "-p",
    String(port),
    `root@${host}`,
    command,
  ];
}

export function tempDir(tag: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `moat-ssh-${tag}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A root-owned copy of the command for sshd's AuthorizedKeysCommand: sshd runs it only when the
 * command and every directory above it are root's and not writable by others, which a clone in
 * /tmp or a home directory is not. The script execs `command` with sshd's arguments after
 * `args`.
 */
export function authorizedKeysCommand(
  command: string,
  args: string,
): { path: string; remove(): void } {
  const dir = `/run/moat-test-sshcmd-${process.pid}`;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, "authorized-keys");
  writeFileSync(path, `#!/bin/sh\nexec ${command} ${args} "$@"\n`, { mode: 0o755 });
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
