// The server's informational answers (1xx, RFC 9110, 15.2) before its final one: 102 Processing
// and 103 Early Hints go on to the client, as they would without moat. 100 Continue is passed by
// the Expect handling, 101 starts a tunnel. Node's HTTP/1 server writes no other 1xx, so a
// proxy's choice to drop them (RFC 9110, 15.2) is moat's for every version. An HTTP/1.0 client
// gets none (a server must not send it a 1xx).
import type { InformationEvent, ServerResponse } from "node:http";
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { endToEnd } from "./headers.ts";

const PROCESSING = 102;
const EARLY_HINTS = 103;

/** Whether moat passes this 1xx on (others are dropped without a word). */
export const passable = (status: number): boolean =>
  status === PROCESSING || status === EARLY_HINTS;

/** Passes `info` (102 or 103) to an HTTP/1.x client; false when it was dropped (a malformed Link, say). */
export function passInformation1(
  info: InformationEvent,
  res: ServerResponse,
  clientVersion: string,
): boolean {
  if (clientVersion === "1.0" || res.headersSent) return false;
  try {
    if (info.statusCode === PROCESSING) res.writeProcessing();
    // Node writes no 103 without a Link, and refuses a Link it cannot check
    else res.writeEarlyHints(endToEnd(info.headers));
    return true;
  } catch {
    return false;
  }
}

/** Passes a 102 or 103 HEADERS frame of the server's stream to the client's stream. */
export function passInformation2(headers: IncomingHttpHeaders, stream: ServerHttp2Stream): boolean {
  const status = Number(headers[":status"]);
  if (stream.destroyed || stream.headersSent) return false;
  try {
    stream.additionalHeaders({ ...endToEnd(headers), ":status": status });
    return true;
  } catch {
    // the stream ended meanwhile, or a field HTTP/2 refuses
    return false;
  }
}
