// The relay's built-in TLS handler: the SNI and offered version of a ClientHello in one record,
// judged before any byte reaches the server. Prevent: the client is reset; otherwise the hello
// goes upstream and the two sockets are spliced.
import { parseClientHello, recordLength } from "./tls-hello.ts";
import { readHead } from "./read-head.ts";
import type { L7Context, Layer7Facts } from "./types.ts";

/** A record is at most 2^14 bytes plus its expansion (RFC 8446, 5.2) and the header. */
const RECORD_MAX = 5 + (1 << 14) + 256;
const HELLO_TIMEOUT_MS = 10_000;

export async function minimalTls(ctx: L7Context): Promise<void> {
  const full = (b: Buffer) => {
    const n = recordLength(b);
    return n !== null && b.length >= n;
  };
  const { head } = await readHead(ctx.client, ctx.head, full, HELLO_TIMEOUT_MS, RECORD_MAX);
  const hello = full(head) ? parseClientHello(head) : null;
  // a hello moat cannot read is a connection whose protocol it cannot tell
  const layer7: Layer7Facts = hello
    ? { tls: { ...(hello.sni ? { sni: hello.sni } : {}), version: hello.version } }
    : {};
  const decision = ctx.judge(layer7);
  if (!decision.forward) {
    ctx.report(decision, layer7);
    ctx.client.resetAndDestroy();
    return;
  }
  const upstream = await ctx.connectUpstream();
  upstream.write(head);
  const splice = await ctx.splice(ctx.client, upstream);
  ctx.report(decision, layer7, { splice });
}
