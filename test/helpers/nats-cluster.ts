// A 3-node nats-server cluster with JetStream (Debian's nats-server), started per test: client and
// route ports chosen per run, store directories in a temporary directory, nkey users from
// docs/fleet.md's configuration (an admin, and hosts limited to their own subjects and keys).
// Every server is ended by its PID on close(), whatever happened before.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, nkeyAuthenticator, nkeys, StorageType, type NatsConnection } from "nats";
import { accepts, freePort } from "./ports.ts";

const NATS_SERVER = "/usr/sbin/nats-server";

export interface NkeyUser {
  /** The seed (SU...), what the user's seed file holds. */
  seed: string;
  /** The public key (U...), what the server's configuration names. */
  publicKey: string;
}

export interface NatsCluster {
  /** Client URLs, one per node. */
  urls: string[];
  dir: string;
  admin: NkeyUser;
  hosts: Map<string, NkeyUser>;
  /** An admin connection to every node (the client follows the cluster). */
  connectAdmin(): Promise<NatsConnection>;
  /** SIGKILLs node `i` (by its PID). */
  kill(i: number): Promise<void>;
  close(): Promise<void>;
}

export function newUser(): NkeyUser {
  const kp = nkeys.createUser();
  return {
    seed: new TextDecoder().decode(kp.getSeed()),
    publicKey: kp.getPublicKey(),
  };
}

/**
 * The permissions docs/fleet.md gives a host: publish its events and its status key, read its
 * policy key, use the JetStream API for the events stream and the policy bucket.
 */
export function hostPermissions(host: string, bucket: string, subject: string): string {
  const stream = `KV_${bucket}`;
  return `{
      publish: {
        allow: [
          "${subject}.${host}",
          "$KV.${bucket}.status.${host}",
          "$JS.API.INFO",
          "$JS.API.STREAM.INFO.${stream}",
          "$JS.API.CONSUMER.CREATE.${stream}.*.$KV.${bucket}.policy.${host}",
          "$JS.API.CONSUMER.DELETE.${stream}.>",
          "$JS.API.CONSUMER.INFO.${stream}.>",
          "$JS.API.DIRECT.GET.${stream}.$KV.${bucket}.policy.${host}",
          "$JS.API.DIRECT.GET.${stream}.$KV.${bucket}.status.${host}",
          "$JS.FC.${stream}.>"
        ]
      }
      subscribe: { allow: ["_INBOX_${host}.>"] }
    }`;
}

export interface ClusterOptions {
  /** Host names that get a user of their own. */
  hosts: string[];
  bucket: string;
  subject: string;
  /** The address servers listen on for clients (default 127.0.0.1). */
  clientHost?: string;
  /** Client ports chosen before the cluster starts (a policy names one): 3, else free ones. */
  clientPorts?: number[];
}

export async function startNatsCluster(o: ClusterOptions): Promise<NatsCluster> {
  const dir = mkdtempSync(join(tmpdir(), "moat-nats-"));
  const clientHost = o.clientHost ?? "127.0.0.1";
  const admin = newUser();
  const hosts = new Map(o.hosts.map((h) => [h, newUser()]));
  const clientPorts: number[] = [...(o.clientPorts ?? [])];
  const routePorts: number[] = [];
  for (let i = 0; i < 3; i++) {
    if (clientPorts.length < 3) clientPorts.push(await freePort(clientHost));
    routePorts.push(await freePort("127.0.0.1"));
  }
  const users = [
    `{ nkey: ${admin.publicKey} }`,
    ...[...hosts].map(
      ([h, u]) =>
        `{ nkey: ${u.publicKey}, permissions: ${hostPermissions(h, o.bucket, o.subject)} }`,
    ),
  ];
  const procs: (ChildProcess | undefined)[] = [];
  const logs: (() => string)[] = [];
  const killPid = async (p: ChildProcess | undefined) => {
    if (!p || p.exitCode !== null || p.signalCode !== null || p.pid === undefined) return;
    const exited = new Promise((r) => p.once("exit", r));
    process.kill(p.pid, "SIGKILL");
    await exited;
  };
  // a test process that exits without its after hooks (an uncaught error) still ends the servers
  const onExit = () => {
    for (const p of procs)
      if (p?.pid !== undefined && p.exitCode === null && p.signalCode === null)
        try {
          process.kill(p.pid, "SIGKILL");
        } catch {
          // gone already
        }
  };
  process.once("exit", onExit);
  const close = async () => {
    process.off("exit", onExit);
    await Promise.all(procs.map(killPid));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 3; i++) {
      const conf = join(dir, `n${i}.conf`);
      writeFileSync(
        conf,
        `server_name: n${i}
listen: "${clientHost}:${clientPorts[i]}"
jetstream { store_dir: "${join(dir, `store${i}`)}" }
cluster {
  name: moat-test
  listen: "127.0.0.1:${routePorts[i]}"
  routes: [${routePorts.map((p) => `"nats-route://127.0.0.1:${p}"`).join(", ")}]
}
authorization { users = [
  ${users.join(",\n  ")}
] }
`,
      );
      const p = spawn(NATS_SERVER, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
      procs.push(p);
      // its last log lines, to say why it ended if it does before listening
      let tail = "";
      p.stderr.on("data", (chunk: Buffer) => {
        if (process.env.NATS_LOG) process.stderr.write(chunk);
        tail = (tail + chunk.toString()).slice(-600);
      });
      logs.push(() => tail);
    }
    const end = Date.now() + 20_000;
    for (const [i, port] of clientPorts.entries())
      while (!(await accepts(port, clientHost))) {
        const p = procs[i]!;
        if (p.exitCode !== null || p.signalCode !== null)
          throw new Error(`nats-server n${i} ended before listening:\n${logs[i]!()}`);
        if (Date.now() > end) throw new Error(`nats-server n${i} did not listen:\n${logs[i]!()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
  } catch (err) {
    await close();
    throw err;
  }
  const urls = clientPorts.map((p) => `nats://${clientHost}:${p}`);
  const cluster: NatsCluster = {
    urls,
    dir,
    admin,
    hosts,
    connectAdmin: () =>
      connect({
        servers: urls,
        authenticator: nkeyAuthenticator(new TextEncoder().encode(admin.seed)),
        maxReconnectAttempts: -1,
        reconnectTimeWait: 100,
      }),
    kill: (i) => killPid(procs[i]),
    close,
  };
  // JetStream answers once the cluster elected its meta leader, and places a stream on every
  // node once the leader knows them all ("no suitable peers for placement" until then): a
  // stream of one replica a node, made and deleted, says both
  const nc = await cluster.connectAdmin();
  try {
    const jsm = await nc.jetstreamManager({ timeout: 2000, checkAPI: false });
    const until = Date.now() + 30_000;
    for (;;) {
      try {
        await jsm.getAccountInfo();
        await jsm.streams.add({
          name: "CLUSTER_READY",
          subjects: ["cluster.ready"],
          num_replicas: clientPorts.length,
          storage: StorageType.Memory,
        });
        await jsm.streams.delete("CLUSTER_READY");
        break;
      } catch (err) {
        if (Date.now() > until) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } catch (err) {
    await nc.close();
    await close();
    throw err;
  }
  await nc.close();
  return cluster;
}

/** Writes `seed` to a root-only file in `dir`, as a host keeps it. */
export function seedFile(dir: string, name: string, seed: string): string {
  const path = join(dir, name);
  writeFileSync(path, seed + "\n", { mode: 0o600 });
  return path;
}
