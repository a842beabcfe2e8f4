// A response body read with a limit: a server (a feed, CrowdSec's local API) cannot make the
// daemon hold more than it was told to take.

/** The body, refused (the fetch aborted) once it passes `maxBytes`; `limit` names it in errors. */
export async function readLimited(
  res: Response,
  maxBytes: number,
  limit = `${maxBytes} bytes`,
): Promise<Buffer> {
  const declared = Number(res.headers.get("content-length") ?? "NaN");
  if (declared > maxBytes) {
    await res.body?.cancel();
    throw new Error(`the body (${declared} bytes) is over ${limit}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  if (!res.body) return Buffer.alloc(0);
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > maxBytes) throw new Error(`the body is over ${limit}`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}
