// Host certificates of security-key types (sk-*-cert-v01@openssh.com) are fingerprinted by the
// key they certify, whose type is the `...@openssh.com` name (PROTOCOL.u2f, PROTOCOL.certkeys).
import { test } from "node:test";
import assert from "node:assert/strict";
import { hostKeyOf, sha256Fingerprint } from "../../../src/l7/ssh/host-key.ts";

const str = (b: Buffer | string) => {
  const x = typeof b === "string" ? Buffer.from(b, "latin1") : b;
  const l = Buffer.alloc(4);
  l.writeUInt32BE(x.length);
  return Buffer.concat([l, x]);
};

const cases: [string, string, Buffer[]][] = [
  [
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "sk-ssh-ed25519@openssh.com",
    [Buffer.alloc(32, 1), Buffer.from("ssh:")],
  ],
  [
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    [Buffer.from("nistp256"), Buffer.alloc(65, 4), Buffer.from("ssh:")],
  ],
];

test("sk- host certificates: the fingerprint of the security key they certify", () => {
  for (const [certType, keyType, fields] of cases) {
    const key = Buffer.concat([str(keyType), ...fields.map(str)]);
    // type, nonce, the key's fields, then what the certificate adds (serial, ... signature)
    const cert = Buffer.concat([
      str(certType),
      str(Buffer.alloc(32, 9)),
      ...fields.map(str),
      Buffer.alloc(8),
      str("rest"),
    ]);
    const got = hostKeyOf(cert);
    assert.equal(got.type, keyType);
    assert.equal(got.certificate, certType);
    assert.equal(got.fingerprint, sha256Fingerprint(key));
  }
});
