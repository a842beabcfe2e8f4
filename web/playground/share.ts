// Share links: the policy, deflated and base64url-encoded, in the URL fragment (#policy=...).
// The fragment never leaves the browser: nothing is sent to a server.
import { fromBase64Url, toBase64Url } from "../shared/explain-link.ts";

async function pipe(bytes: Uint8Array, stream: CompressionStream | DecompressionStream) {
  const out = new Blob([bytes as BlobPart]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(out).arrayBuffer());
}

export async function encodePolicy(text: string): Promise<string> {
  const packed = await pipe(new TextEncoder().encode(text), new CompressionStream("deflate-raw"));
  return toBase64Url(packed);
}

export async function decodePolicy(encoded: string): Promise<string> {
  const bytes = await pipe(fromBase64Url(encoded), new DecompressionStream("deflate-raw"));
  return new TextDecoder().decode(bytes);
}

/** The fragment's `key=value` pairs (#policy=...&explain=...). */
export function fragmentParams(hash: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of hash.replace(/^#/, "").split("&")) {
    const eq = part.indexOf("=");
    if (eq > 0) out.set(part.slice(0, eq), part.slice(eq + 1));
    else if (part) out.set(part, "");
  }
  return out;
}
