// Signed fleet policies: the admin signs a policy for one host's key with an nkey, as the first
// line of the text (a YAML comment, so the text stays the policy it was); a host whose running
// policy names signers applies only a revision one of them signed, for its own bucket and key,
// later than the signature it applied last. Whoever can write to the bucket (a leaked admin
// credential, a compromised server) then still cannot change a host's policy, nor put back an
// older signed one.
import { nkeys } from "nats";

const PREFIX = "# moat-signature: ";
const LINE = /^# moat-signature: (U[A-Z2-7]{55}) (\d{1,15}) ([A-Za-z0-9_-]{86})\r?$/;

export interface SignedFor {
  bucket: string;
  key: string;
}

/** What is signed: the bucket, the key and the time bind the text to one host and one moment. */
function signedBytes(to: SignedFor, time: number, body: string): Uint8Array {
  return new TextEncoder().encode(`moat fleet policy\n${to.bucket}\n${to.key}\n${time}\n${body}`);
}

/** The text without its signature line, if it has one. */
export function unsigned(text: string): string {
  if (!text.startsWith(PREFIX)) return text;
  const end = text.indexOf("\n");
  return end < 0 ? "" : text.slice(end + 1);
}

/** `text` (any signature line replaced) signed by the nkey `seed` for `to` at `time` (ms). */
export function signPolicy(text: string, seed: string, to: SignedFor, time: number): string {
  const body = unsigned(text);
  const kp = nkeys.fromSeed(new TextEncoder().encode(seed.trim()));
  const signature = Buffer.from(kp.sign(signedBytes(to, time, body))).toString("base64url");
  return `${PREFIX}${kp.getPublicKey()} ${time} ${signature}\n${body}`;
}

export type Verdict = { ok: true; time: number } | { ok: false; error: string };

/**
 * Whether `text` is signed for `to` by one of `signers`, later than `after` (the time of the
 * signature last applied; 0: none yet).
 */
export function verifyPolicy(
  text: string,
  to: SignedFor,
  signers: readonly string[],
  after: number,
): Verdict {
  const end = text.indexOf("\n");
  const match = LINE.exec(end < 0 ? text : text.slice(0, end));
  if (!match)
    return { ok: false, error: "not signed: the first line is no '# moat-signature: ...'" };
  const [, signer = "", timeText = "", signature = ""] = match;
  if (!signers.includes(signer))
    return { ok: false, error: `signed by ${signer}, which fleet.policy.signers does not name` };
  const time = Number(timeText);
  let valid = false;
  try {
    valid = nkeys
      .fromPublic(signer)
      .verify(signedBytes(to, time, text.slice(end + 1)), Buffer.from(signature, "base64url"));
  } catch {
    valid = false;
  }
  if (!valid)
    return {
      ok: false,
      error: `the signature of ${signer} does not match this text, bucket and key`,
    };
  if (time <= after)
    return {
      ok: false,
      error: `signed at ${new Date(time).toISOString()}, not after the policy applied last (${new Date(after).toISOString()}): an older policy put back`,
    };
  return { ok: true, time };
}
