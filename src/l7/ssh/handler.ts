// Outgoing SSH through moat's relay: the client's bytes flow to the server from its version line
// on (a client whose first line is not one is not SSH: closed, none of it forwarded); the server's
// flow to the client up to the packet that carries its host key (the key exchange reply). There
// moat judges the connection with the server's version line and host key fingerprint: allowed or
// detected, the held bytes go on and the kernel takes the two sockets over; blocked, both are
// reset before the client has seen the key, so it never authenticates. A server that is not
// SSH, sends too much, or has not shown its key within the timeout: both are closed.
import type { Socket } from "node:net";
import type { Layer7Facts } from "../../policy/facts.ts";
import { NothingForwards, type L7Context, type L7Handler } from "../types.ts";
import { SshHandshake, type SshSeen } from "./handshake.ts";

export interface SshHandlerOptions {
  /** Until the host key is seen (ms). */
  timeoutMs?: number;
  /** Bytes buffered per direction before the host key. */
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

function reset(socket: Socket): void {
  if (!socket.destroyed) socket.resetAndDestroy();
}

export function sshHandlerWith(options: SshHandlerOptions = {}): L7Handler {
  const timeoutMs = options.timeoutMs ?? SSH_TIMEOUT_MS;
  return async (ctx: L7Context) => {
    const { client } = ctx;
    const hs = new SshHandshake(options.maxBytes);
    let upstream: Socket;
    try {
      hs.fromClient(ctx.head);
      upstream = await ctx.connectUpstream();
    } catch (err) {
      reset(client);
      if (err instanceof NothingForwards) {
        // no host key or version could let it through: blocked before the server is asked
        const layer7: Layer7Facts = { ssh: {} };
        const decision = ctx.judge(layer7);
        if (!decision.forward) ctx.report(decision, layer7);
        return;
      }
      ctx.log(`ssh to ${ctx.original.ip}:${ctx.original.port}: ${(err as Error).message}`);
      return;
    }
    let held: Buffer = Buffer.alloc(0);
    const seen = await new Promise<SshSeen | null>((resolve) => {
      let sent = 0;
      const finish = (result: SshSeen | null, why?: string) => {
        clearTimeout(timer);
        client.off("data", onClient);
        upstream.off("data", onServer);
        client.off("close", onClose);
        upstream.off("close", onClose);
        client.pause();
        upstream.pause();
        if (why) ctx.log(`ssh to ${ctx.original.ip}:${ctx.original.port}: ${why}`);
        resolve(result);
      };
      // the client's bytes go on only from a whole version line: what is not SSH never does
      let passed = 0;
      const passClient = (chunk: Buffer) => {
        if (hs.client.version === null) return;
        if (passed < hs.client.length) upstream.write(hs.client.bytes(passed));
        else if (hs.result) upstream.write(chunk); // read after the host key: not kept
        passed = hs.client.length;
      };
      const onClient = (chunk: Buffer) => {
        try {
          hs.fromClient(chunk);
        } catch (err) {
          finish(null, `client: ${(err as Error).message}`);
          return;
        }
        passClient(chunk);
        // the client's KEXINIT may be what completes the handshake (an exchange moat does not read)
        if (hs.result) passServer();
      };
      const onServer = (chunk: Buffer) => {
        try {
          hs.fromServer(chunk);
        } catch (err) {
          finish(null, `server: ${(err as Error).message}`);
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
      const onClose = () => finish(null, "closed before the host key");
      const timer = setTimeout(() => finish(null, `no host key within ${timeoutMs} ms`), timeoutMs);
      passClient(ctx.head);
      client.on("data", onClient);
      upstream.on("data", onServer);
      client.once("close", onClose);
      upstream.once("close", onClose);
      client.resume();
    });
    if (!seen) {
      reset(client);
      reset(upstream);
      return;
    }
    const layer7 = sshFacts(seen);
    const decision = ctx.judge(layer7);
    if (!decision.forward) {
      reset(client);
      reset(upstream);
      ctx.report(decision, layer7);
      return;
    }
    if (held.length > 0) client.write(held);
    const mode = await ctx.splice(client, upstream);
    ctx.report(decision, layer7, { splice: mode });
  };
}

/** The SSH handler with the default timeout and buffer bound. */
export const sshHandler: L7Handler = sshHandlerWith();
