// The relay's TLS handler: reads the ClientHello (however it is split), judges it with what is
// known, and learns more only when the policy's answer depends on it: the server's certificate
// (moat's probe when the client offers TLS 1.3, else the server's own Certificate message) and
// the chosen version (the ServerHello). Blocked: the client is reset, and nothing reaches the
// server unless the verdict needed the server's reply, and then only the ClientHello's records.
// Allowed: the bytes read so far are passed on, in order, and the sockets are spliced.
// docs/l7-tls.md says what moat can and cannot see.

import type { Socket } from "node:net";
import type { X509Certificate } from "node:crypto";
import type { Layer7Facts, TlsFacts } from "../../policy/facts.ts";
import { NothingForwards, type L7Context, type L7Decision, type L7Handler } from "../types.ts";
import { certificateFacts, systemTrust } from "./certificate-facts.ts";
import { Flight, type FlightRead } from "./flight.ts";
import {
  HANDSHAKE,
  parseCertificates,
  parseClientHello,
  parseServerHello,
  type ClientHello,
  type ServerHello,
} from "./hello.ts";
import { CertificateProbe } from "./probe.ts";

export interface TlsHandlerOptions {
  /** The ClientHello must be complete within this (ms). */
  helloTimeoutMs?: number;
  /** The server's ServerHello (and Certificate) must come within this (ms). */
  serverTimeoutMs?: number;
  probe?: CertificateProbe;
  /** Trust anchors for `valid` (the system store by default). */
  trust?: () => X509Certificate[];
}

const HELLO_TIMEOUT_MS = 10_000;
const SERVER_TIMEOUT_MS = 10_000;

export function makeTlsHandler(options: TlsHandlerOptions = {}): L7Handler {
  const trust = options.trust ?? systemTrust;
  const probe = options.probe ?? new CertificateProbe({ trust });
  const helloTimeout = options.helloTimeoutMs ?? HELLO_TIMEOUT_MS;
  const serverTimeout = options.serverTimeoutMs ?? SERVER_TIMEOUT_MS;
  return async (ctx) => {
    ctx.client.on("error", () => {}); // a reset client ends the handler's reads, nothing more
    const fromClient = new Flight(ctx.client, ctx.head);
    const first = await fromClient.next(Date.now() + helloTimeout);
    const hello = clientHello(first);
    if (typeof hello === "string") return unreadable(ctx, fromClient, hello);
    const tls = helloFacts(hello);
    let decision = settled(ctx, tls);
    if (!decision && hello.versions.includes("1.3")) {
      const target = {
        ip: ctx.original.ip,
        port: ctx.original.port,
        sni: hello.sni,
        alpn: hello.alpn,
      };
      const seen = await probe.certificate(target, () => ctx.connectUpstream("probe"));
      if (seen) tls.certificate = seen;
      decision = settled(ctx, tls);
    }
    if (decision && !decision.forward) return block(ctx, decision, tls, null);
    let upstream: Socket;
    try {
      upstream = await ctx.connectUpstream();
    } catch (error) {
      // blocked whatever the server would show (rules that differ only in which one blocks):
      // as if the facts not shown yet matched, as the relay takes any undecided rule
      if (error instanceof NothingForwards)
        return block(ctx, ctx.judge({ tls: { ...tls, pending: "match" } }), tls, null);
      return noServer(ctx, decision, tls, error);
    }
    upstream.on("error", () => {});
    // decided: all the client sent goes on; else its hello's records only, and what came after
    // them (0-RTT early data) waits for the verdict, never reaching the server of a blocked one
    const forwardHello = () =>
      upstream.write(decision ? fromClient.takeAll() : fromClient.takeThroughMessage());
    forwardHello();
    const fromServer = new Flight(upstream);
    // after a HelloRetryRequest the client sends a second ClientHello: it goes on only when it
    // says what the first did (RFC 8446 4.1.2), as the judgement read the first
    let second: ClientHello | null = null;
    const retry = async (): Promise<string | null> => {
      ctx.client.write(fromServer.takeAll());
      const again = clientHello(await fromClient.next(Date.now() + helloTimeout));
      if (typeof again === "string") return again;
      second = again;
      const differs = helloDifference(hello, again);
      if (differs) return `its ${differs} differs from the first's`;
      forwardHello();
      return null;
    };
    // the ServerHello follows at once: read it for the event (version, cipher) and, when the
    // decision is still open, the Certificate after it (TLS <= 1.2)
    const deadline = Date.now() + serverTimeout;
    const cut = await readServer(fromServer, tls, deadline, decision ? null : trust, retry);
    if (cut) return retryRefused(ctx, cut, second, upstream);
    // a server that knows no supported_versions (TLS <= 1.2 only) chooses by legacy_version: a
    // version the hello did not offer, which the judgement at the hello did not read
    if (decision && tls.version !== undefined && !hello.versions.includes(tls.version))
      decision = settled(ctx, tls) ?? ctx.judge({ tls: { ...tls, pending: "match" } });
    if (!decision) {
      // neither the probe nor the server's reply showed it: rules follow their `unknown`
      if (!tls.certificate && !tls.unseen?.includes("certificate"))
        tls.unseen = [...(tls.unseen ?? []), "certificate"];
      decision = settled(ctx, tls) ?? ctx.judge({ tls: { ...tls, pending: "no-match" } });
    }
    if (!decision.forward) return block(ctx, decision, tls, upstream);
    // what the client sent while the server's reply was read (mostly nothing: it waits for that
    // reply); an empty write would cost a system call and send nothing
    const held = fromClient.takeAll();
    if (held.length > 0) upstream.write(held);
    ctx.client.write(fromServer.takeAll());
    const splice = await ctx.splice(ctx.client, upstream);
    ctx.report(decision, layer7Of(tls), { splice });
  };
}

/** The handler the relay uses: the system trust store, 3 s probes cached 10 minutes. */
export const tlsHandler: L7Handler = makeTlsHandler();

function clientHello(read: FlightRead): ClientHello | string {
  if (read.kind === "timeout") return "no complete ClientHello in time";
  if (read.kind === "closed") return "closed before a complete ClientHello";
  if (read.kind === "malformed") return `malformed: ${read.reason}`;
  if (read.kind === "alert") return "an alert record before the ClientHello";
  if (read.kind !== "message") return "an encrypted record before the ClientHello";
  if (read.type !== HANDSHAKE.clientHello) return `handshake message ${read.type} first`;
  try {
    return parseClientHello(read.body);
  } catch (error) {
    return `malformed ClientHello: ${(error as Error).message}`;
  }
}

/**
 * The decision when the facts not seen yet cannot change it: judged as if they matched and as
 * if they did not; the same rule and verdict both ways is the answer, else null (learn more).
 */
function settled(ctx: L7Context, tls: TlsFacts): L7Decision | null {
  const yes = ctx.judge({ tls: { ...tls, pending: "match" } });
  const no = ctx.judge({ tls: { ...tls, pending: "no-match" } });
  return yes.rule === no.rule && yes.verdict === no.verdict ? yes : null;
}

/** What rules read of a ClientHello. */
function helloFacts(hello: ClientHello): TlsFacts {
  return {
    ...(hello.sni !== undefined ? { sni: hello.sni } : {}),
    offered: hello.versions,
    alpn: hello.alpn,
    ech: hello.ech,
    ...(hello.ech ? { unseen: ["sni" as const] } : {}),
  };
}

/** Which fact rules read differs between two ClientHellos, or null. */
function helloDifference(a: ClientHello, b: ClientHello): string | null {
  if (a.sni !== b.sni) return "server name";
  if (a.versions.join() !== b.versions.join()) return "versions";
  if (a.alpn.join("\0") !== b.alpn.join("\0")) return "ALPN";
  if (a.ech !== b.ech) return "ECH";
  return null;
}

/**
 * ServerHello -> version and cipher; with `trust`, in TLS <= 1.2, the Certificate after it. A
 * HelloRetryRequest is passed to `retry`, which forwards the client's second ClientHello or says
 * why not; that reason (or a second HelloRetryRequest, RFC 8446 4.1.4) is returned: cut.
 */
async function readServer(
  flight: Flight,
  tls: TlsFacts,
  deadline: number,
  trust: (() => X509Certificate[]) | null,
  retry: () => Promise<string | null>,
): Promise<string | null> {
  let retried = false;
  for (;;) {
    const first = await flight.next(deadline);
    if (first.kind !== "message" || first.type !== HANDSHAKE.serverHello) return null;
    let hello: ServerHello;
    try {
      hello = parseServerHello(first.body);
    } catch {
      return null;
    }
    tls.version = hello.version;
    tls.cipher = hello.cipher;
    if (!hello.retry) break;
    if (retried) return "a second HelloRetryRequest";
    retried = true;
    const refused = await retry();
    if (refused) return refused;
  }
  if (!trust || tls.version === "1.3" || tls.certificate) return null;
  // TLS <= 1.2: EncryptedExtensions do not exist; Certificate comes next unless resumed
  for (let i = 0; i < 4; i++) {
    const read = await flight.next(deadline);
    if (read.kind !== "message") return null;
    if (read.type !== HANDSHAKE.certificate) continue;
    try {
      tls.certificate = certificateFacts(parseCertificates(read.body), "handshake", trust());
    } catch {
      tls.unseen = [...(tls.unseen ?? []), "certificate"];
    }
    return null;
  }
  return null;
}

/**
 * A second ClientHello that does not say what the first did (or none): both sides are reset.
 * When its own facts would be blocked, that judgement is reported with them.
 */
function retryRefused(
  ctx: L7Context,
  why: string,
  second: ClientHello | null,
  upstream: Socket,
): void {
  ctx.log(`tls: ${ctx.original.ip}:${ctx.original.port}: after a HelloRetryRequest, ${why}; cut`);
  ctx.client.resetAndDestroy();
  upstream.resetAndDestroy();
  if (!second) return;
  const tls = helloFacts(second);
  const yes = ctx.judge({ tls: { ...tls, pending: "match" } });
  const no = ctx.judge({ tls: { ...tls, pending: "no-match" } });
  const blocked = [yes, no].find((d) => !d.forward);
  if (blocked) ctx.report(blocked, layer7Of(tls));
}

/** The facts as events carry them (no relay bookkeeping). */
function layer7Of(tls: TlsFacts): Layer7Facts {
  const { pending: _pending, ...facts } = tls;
  void _pending;
  return { tls: facts };
}

/** The facts of a connection whose server could not be reached, with why (events only). */
interface TlsEnded extends TlsFacts {
  ended: string;
}

/**
 * The server could not be reached: the client is reset, logged, and reported with why
 * (`layer7.tls.ended`), as HTTP and SSH report it. Decided before: that decision (HTTP's 502).
 * Still waiting for the server's reply: judged with what it would show unseen and reported
 * blocked in every mode (SSH's connection ended before its host key).
 */
function noServer(
  ctx: L7Context,
  decision: L7Decision | null,
  tls: TlsFacts,
  error: unknown,
): void {
  const ended = `no connection to the server: ${error instanceof Error ? error.message : String(error)}`;
  ctx.log(`tls: ${ctx.original.ip}:${ctx.original.port}: ${ended}`);
  ctx.client.resetAndDestroy();
  const endedWith = (facts: TlsFacts): { tls: TlsEnded } => ({
    tls: { ...layer7Of(facts).tls, ended },
  });
  if (decision) return ctx.report(decision, endedWith(tls));
  const unseen: TlsFacts = tls.certificate
    ? tls
    : { ...tls, unseen: [...new Set([...(tls.unseen ?? []), "certificate" as const])] };
  const judged = settled(ctx, unseen) ?? ctx.judge({ tls: { ...unseen, pending: "no-match" } });
  const blocked: L7Decision = {
    ...judged,
    verdict: "blocked",
    forward: false,
    report: true,
    mode: "prevent",
  };
  ctx.report(blocked, endedWith(unseen));
}

function block(ctx: L7Context, decision: L7Decision, tls: TlsFacts, upstream: Socket | null): void {
  ctx.client.resetAndDestroy();
  upstream?.resetAndDestroy();
  ctx.report(decision, layer7Of(tls));
}

/**
 * A ClientHello moat cannot read, and so no certificate either: what they would show is unseen.
 * Conditions on the server name or the certificate follow their rule's `unknown`.
 */
const UNREAD: TlsFacts = { unseen: ["sni", "certificate"] };

/**
 * The judgement of a ClientHello moat cannot read: judged as if none of its other facts (ALPN,
 * ECH, versions) matched, and as if any might; blocked when either blocks (a block rule that the
 * hello might meet does), else the judgement that leaned on nothing the hello could show. That
 * one is judged last: an upstream carries the latest judgement that forwards, so the connection
 * goes as the rule its event names (judged the other way round, an upstream would carry a rule
 * the hello might have met and the event would name another).
 */
function judgeUnread(ctx: L7Context): L7Decision {
  const any = ctx.judge({ tls: { ...UNREAD, ech: true, pending: "match" } });
  const none = ctx.judge({
    tls: { ...UNREAD, offered: [], alpn: [], ech: false, pending: "no-match" },
  });
  return none.forward && !any.forward ? any : none;
}

/** Not a ClientHello moat can read: judged with what it would show unseen (`unknown` decides). */
async function unreadable(ctx: L7Context, flight: Flight, why: string): Promise<void> {
  ctx.log(`tls: ${ctx.original.ip}:${ctx.original.port}: ${why}`);
  const layer7 = { tls: UNREAD };
  const decision = judgeUnread(ctx);
  if (!decision.forward || ctx.client.destroyed) {
    ctx.client.resetAndDestroy();
    ctx.report(decision, layer7);
    return;
  }
  let upstream: Socket;
  try {
    upstream = await ctx.connectUpstream();
  } catch (error) {
    return noServer(ctx, decision, UNREAD, error);
  }
  upstream.on("error", () => {});
  upstream.write(flight.takeAll());
  const splice = await ctx.splice(ctx.client, upstream);
  ctx.report(decision, layer7, { splice });
}
