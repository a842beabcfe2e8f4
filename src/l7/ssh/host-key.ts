// A host key's SHA256 fingerprint as `ssh-keygen -l` prints it ("SHA256:" + base64 without
// padding). A host certificate (*-cert-v01@openssh.com) is fingerprinted by the key it certifies,
// as ssh-keygen does: the CA and the certificate's validity are not checked (moat pins keys).
import { createHash } from "node:crypto";
import { peerText, SshProtocolError, SshReader } from "./wire.ts";

export interface HostKey {
  /** The key's type, e.g. "ssh-ed25519" (of the certified key for a certificate). */
  type: string;
  fingerprint: string;
  /** The certificate type when the server showed a certificate. */
  certificate?: string;
}

const CERT = "-cert-v01@openssh.com";

/** After the nonce, the certified key's fields (strings and mpints alike are length-prefixed). */
const CERT_FIELDS: Record<string, number> = {
  "ssh-ed25519": 1,
  "ssh-rsa": 2,
  "ssh-dss": 4,
  "ecdsa-sha2-nistp256": 2,
  "ecdsa-sha2-nistp384": 2,
  "ecdsa-sha2-nistp521": 2,
  "sk-ssh-ed25519@openssh.com": 2,
  "sk-ecdsa-sha2-nistp256@openssh.com": 3,
};

export function sha256Fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

function sshString(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

/** The plain key inside a certificate blob, as its own key blob. */
function certifiedKey(certType: string, r: SshReader): { type: string; blob: Buffer } {
  const base = certType.slice(0, -CERT.length);
  // security-key types keep their vendor suffix on the key: sk-ssh-ed25519@openssh.com
  const type = base.startsWith("sk-") ? `${base}@openssh.com` : base;
  const fields = CERT_FIELDS[type];
  if (fields === undefined)
    throw new SshProtocolError(`host certificate type ${peerText(certType)} unknown`);
  r.string(); // nonce
  const parts = [sshString(Buffer.from(type, "latin1"))];
  for (let i = 0; i < fields; i++) parts.push(sshString(r.string()));
  return { type, blob: Buffer.concat(parts) };
}

export function hostKeyOf(blob: Buffer): HostKey {
  const r = new SshReader(blob);
  const type = r.text();
  if (!type.endsWith(CERT)) return { type, fingerprint: sha256Fingerprint(blob) };
  const key = certifiedKey(type, r);
  return { type: key.type, fingerprint: sha256Fingerprint(key.blob), certificate: type };
}
