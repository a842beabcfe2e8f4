// Outgoing SSH through moat's relay. Before the verdict only the key exchange's first messages
// pass (handshake.ts): the client's version line, KEXINIT and the exchange's init reach the
// server (a client whose first line is not its version, that sends any other message, or more
// than a small budget, is refused); the server's version (and lines before it), KEXINIT and the
// exchange's messages before its reply reach the client. There moat judges the connection with
// the server's version line and host key fingerprint: allowed or detected, the held bytes go on
// and the kernel takes the two sockets over; blocked, both are reset before the client has seen
// the key, so it never authenticates. A connection refused, ended or timed out before the host
// key is reset on both sides and reported blocked, with why (`layer7.ssh.ended`).
import type { Socket } from "node:net";
import type { Layer7Facts, SshFacts } from "../../policy/facts.ts";
import { NothingForwards, type L7Context, type L7Decision, type L7Handler } from "../types.ts";
import { SshHandshake, type SshSeen } from "./handshake.ts";

export interface SshHandlerOptions {
  /** Until the host key is seen (ms). */
  timeoutMs?: number;
  /** Bytes buffered from the server before the host key. */
  maxBytes?: number;
}

export const SSH_TIMEOUT_MS = 10_000;

/** The layer7 facts of what was seen: the version, and the key when the exchange showed it. */
export function sshFacts(seen: SshSeen): Layer7Facts {
  return {
    ssh: {
      version: seen.version,
      ...(seen.hostKey ? { host_key: seen.hostKey.fingerprint } : {}),
    },
  };
}

/** The facts of a connection that ended before its host key, with why (events only). */
interface SshEnded extends SshFacts {
  ended: string;
}

function reset(socket: Socket | null): void {
  if (socket && !socket.destroyed) socket.resetAndDestroy();
}

/**
 * A connection refused, ended or timed out before the verdict: both reset, and reported blocked
 * by the rule that judges it without a host key (the server's version when it sent one), with why.
 */
function endedUnjudged(
  ctx: L7Context,
  hs: SshHandshake,
  upstream: Socket | null,
  why: string,
): void {
  reset(ctx.client);
  reset(upstream);
  ctx.log(`ssh to ${ctx.original.ip}:${ctx.original.port}: ${why}`);
  const version = hs.server.version;
  const facts: SshFacts = version ? { version } : {};
  const judged = ctx.judge({ ssh: facts });
  // the relay reset it in every mode: it had no host key to judge, whatever the rule's mode
  const decision: L7Decision = {
    ...judged,
    verdict: "blocked",
    forward: false,
    report: true,
    mode: "prevent",
  };
  const layer7: { ssh: SshEnded } = { ssh: { ...facts, ended: why } };
  ctx.report(decision, layer7);
}

export function sshHandlerWith(options: SshHandlerOptions = {}): L7Handler {
  const timeoutMs = options.timeoutMs ?? SSH_TIMEOUT_MS;
  return async (ctx: L7Context) => {
    const { client } = ctx;
    const hs = new SshHandshake(options.maxBytes);
    try {
      hs.fromClient(ctx.head);
    } catch (err) {
      endedUnjudged(ctx, hs, null, `client: ${(err as Error).message}`);
      return;
    }
    if (hs.refused) return endedUnjudged(ctx, hs, null, `client: ${hs.refused}`);
    let upstream: Socket;
    try {
      upstream = await ctx.connectUpstream();
    } catch (err) {
      if (err instanceof NothingForwards) {
        // no host key or version could let it through: blocked before the server is asked
        reset(client);
        const layer7: Layer7Facts = { ssh: {} };
        const decision = ctx.judge(layer7);
        if (!decision.forward) ctx.report(decision, layer7);
        return;
      }
      endedUnjudged(ctx, hs, null, `no connection to the server: ${(err as Error).message}`);
      return;
    }
    upstream.on("error", () => {}); // a reset server ends in onServerClose, reported with why
    let held: Buffer = Buffer.alloc(0);
    let passed = 0;
    const outcome = await new Promise<SshSeen | string>((resolve) => {
      let sent = 0;
      const finish = (result: SshSeen | string) => {
        clearTimeout(timer);
        client.off("data", onClient);
        upstream.off("data", onServer);
        client.off("close", onClientClose);
        upstream.off("close", onServerClose);
        client.pause();
        upstream.pause();
        resolve(result);
      };
      // the client's whole, vetted lines and packets: what is not its key exchange never goes on
      const passClient = () => {
        const safe = hs.clientForwardable;
        if (safe > passed) upstream.write(hs.client.bytes(passed, safe));
        passed = safe;
      };
      const onClient = (chunk: Buffer) => {
        try {
          hs.fromClient(chunk);
        } catch (err) {
          finish(`client: ${(err as Error).message}`);
          return;
        }
        if (hs.refused) return finish(`client: ${hs.refused}`);
        passClient();
        // the client's KEXINIT may be what completes the handshake (an exchange moat does not read)
        if (hs.result) passServer();
      };
      const onServer = (chunk: Buffer) => {
        try {
          hs.fromServer(chunk);
        } catch (err) {
          finish(`server: ${(err as Error).message}`);
          return;
        }
        passServer();
      };
      const passServer = () => {
        const safe = hs.forwardable;
        if (safe > sent) client.write(hs.server.bytes(sent, safe));
        sent = safe;
        if (hs.result) {
          // the reply and what followed it wait for the verdict
          held = hs.server.bytes(sent);
          finish(hs.result);
        }
      };
      const onClientClose = () => finish("client closed before the host key");
      const onServerClose = () => finish("server closed before the host key");
      const timer = setTimeout(() => finish(`no host key within ${timeoutMs} ms`), timeoutMs);
      passClient();
      client.on("data", onClient);
      upstream.on("data", onServer);
      client.once("close", onClientClose);
      upstream.once("close", onServerClose);
      client.resume();
    });
    if (typeof outcome === "string") {
      endedUnjudged(ctx, hs, upstream, outcome);
      return;
    }
    const layer7 = sshFacts(outcome);
    const decision = ctx.judge(layer7);
    if (!decision.forward) {
      reset(client);
      reset(upstream);
      ctx.report(decision, layer7);
      return;
    }
    // what each side sent after the other's last forwarded message, held until now
    if (hs.client.length > passed) upstream.write(hs.client.bytes(passed));
    if (held.length > 0) client.write(held);
    const mode = await ctx.splice(client, upstream);
    ctx.report(decision, layer7, { splice: mode });
  };
}

/** The SSH handler with the default timeout and buffer bound. */
export const sshHandler: L7Handler = sshHandlerWith();
