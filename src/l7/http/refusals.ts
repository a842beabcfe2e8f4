// What a client is told when moat refuses: the 403 of a rule, and the status for a request the
// parser refused (docs/l7-http.md, "Malformed and slow requests").

/** The body of the 403 a blocked request gets. */
export const blockedBody = (rule: string): string => `moat: blocked by rule ${rule}\n`;

/** A complete HTTP/1.1 response that closes the connection. */
export function closingResponse(status: number, reason: string, body = ""): string {
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

/** The answer to a request Node's parser refused, by its error code. */
export function parseErrorResponse(code: string | undefined): string {
  if (code === "HPE_HEADER_OVERFLOW")
    return closingResponse(431, "Request Header Fields Too Large", "moat: headers too large\n");
  return closingResponse(400, "Bad Request", "moat: malformed request\n");
}

export const TIMEOUT_RESPONSE = closingResponse(
  408,
  "Request Timeout",
  "moat: request headers too slow\n",
);

/**
 * Why an upstream request failed, as the client's 502 and the log say it: an answer Node's
 * parser refused (a head too large, a repeated Content-Length, no status line) or none at all.
 */
export function upstreamFailure(err: Error & { code?: string; reason?: string }): string {
  if (!err.code?.startsWith("HPE_")) return "the server did not answer";
  return `the server's answer could not be read: ${err.reason ?? err.code}`;
}
