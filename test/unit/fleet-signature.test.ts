// Signed fleet policies: a host that names signers applies a revision only when one of them
// signed that text for its own bucket and key, later than the signature it applied last.
import { test } from "node:test";
import assert from "node:assert/strict";
import { nkeys } from "nats";
import { signPolicy, unsigned, verifyPolicy } from "../../src/fleet/signature.ts";
import { isPublicUserNkey } from "../../src/config/nkey-public.ts";

const admin = nkeys.createUser();
const seed = new TextDecoder().decode(admin.getSeed());
const other = nkeys.createUser();
const otherSeed = new TextDecoder().decode(other.getSeed());
const signers = [admin.getPublicKey()];
const web1 = { bucket: "moat-policy", key: "policy.web1" };
const TEXT = "version: 1\nmode: prevent\n";

test("a policy signed for the host's key by a signer, later than the last, verifies", () => {
  const signed = signPolicy(TEXT, seed, web1, 1_000);
  assert.match(signed, /^# moat-signature: U[A-Z2-7]{55} 1000 [A-Za-z0-9_-]{86}\nversion: 1\n/);
  assert.equal(unsigned(signed), TEXT);
  assert.deepEqual(verifyPolicy(signed, web1, signers, 0), { ok: true, time: 1_000 });
  assert.deepEqual(verifyPolicy(signed, web1, signers, 999), { ok: true, time: 1_000 });
  // signing again replaces the signature line
  assert.equal(unsigned(signPolicy(signed, seed, web1, 2_000)), TEXT);
});

test("every way a revision can be forged or put back is refused, saying why", () => {
  const signed = signPolicy(TEXT, seed, web1, 5_000);
  const refused = (text: string, to = web1, after = 0) => {
    const v = verifyPolicy(text, to, signers, after);
    assert.equal(v.ok, false);
    return v.ok ? "" : v.error;
  };
  assert.match(refused(TEXT), /^not signed/);
  assert.match(
    refused(signPolicy(TEXT, otherSeed, web1, 5_000)),
    /fleet.policy.signers does not name/,
  );
  // the text changed after signing
  assert.match(refused(signed.replace("prevent", "detect")), /does not match this text/);
  // moved to another host's key, or another bucket
  assert.match(refused(signed, { ...web1, key: "policy.web2" }), /does not match/);
  assert.match(refused(signed, { ...web1, bucket: "other" }), /does not match/);
  // the time in the line changed
  assert.match(refused(signed.replace(" 5000 ", " 6000 ")), /does not match/);
  // an older signed policy put back after a newer one was applied
  assert.match(
    refused(signed, web1, 5_000),
    /not after the policy applied last.*an older policy put back/,
  );
  // a broken signature line
  assert.match(refused(signed.replace(/ [A-Za-z0-9_-]{86}\n/, " abc\n")), /^not signed/);
});

test("a signer's public nkey is checked with its checksum, as NATS reads it", () => {
  for (let i = 0; i < 200; i++) {
    const key = nkeys.createUser().getPublicKey();
    assert.equal(isPublicUserNkey(key), true, key);
    const at = 1 + (i % 55);
    const broken = key.slice(0, at) + (key[at] === "A" ? "B" : "A") + key.slice(at + 1);
    let nats = true;
    try {
      nkeys.fromPublic(broken);
    } catch {
      nats = false;
    }
    assert.equal(isPublicUserNkey(broken), nats, broken);
  }
  assert.equal(isPublicUserNkey(nkeys.createAccount().getPublicKey()), false);
});
