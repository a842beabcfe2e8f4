// Certificate facts from a chain: names, issuer, fingerprint, expiry, and `valid` (the chain
// verifies up to a trusted root and every date is current), on certificates made by openssl here
// and on the system's own CA store.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { certificateFacts, systemTrust } from "../../../src/l7/tls/certificate-facts.ts";
import { makeCertificates, type TestCertificates } from "../../helpers/test-certificates.ts";

let certs: TestCertificates;
const der = (file: string) => new X509Certificate(readFileSync(file)).raw;
const trust = () => [new X509Certificate(readFileSync(certs.root))];

before(() => {
  certs = makeCertificates([
    { name: "good", cn: "www.corp.test" },
    { name: "expired", cn: "www.corp.test", start: "200101000000Z", end: "210101000000Z" },
  ]);
});
after(() => certs?.remove());

test("a leaf with its intermediate verifies up to the trusted root; the facts name it", () => {
  const facts = certificateFacts(
    [der(certs.leaf("good").cert), der(certs.intermediate)],
    "handshake",
    trust(),
  );
  assert.equal(facts.valid, true);
  assert.equal(facts.subject_cn, "www.corp.test");
  assert.deepEqual(facts.sans, ["www.corp.test"]);
  assert.match(facts.issuer, /CN=moat test intermediate/);
  assert.match(facts.fingerprint ?? "", /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.ok(Date.parse(facts.not_after ?? "") > Date.now() + 80 * 86_400_000);
});

test("not valid: the intermediate missing, an untrusted root, an expired leaf", () => {
  const leaf = der(certs.leaf("good").cert);
  assert.equal(certificateFacts([leaf], "probe", trust()).valid, false);
  assert.equal(
    certificateFacts([leaf, der(certs.intermediate)], "probe", systemTrust()).valid,
    false,
  );
  const expired = certificateFacts(
    [der(certs.leaf("expired").cert), der(certs.intermediate)],
    "probe",
    trust(),
  );
  assert.equal(expired.valid, false);
  assert.equal(expired.not_after, "2021-01-01T00:00:00.000Z");
});

test("the system CA store is the default trust", () => {
  const roots = systemTrust();
  assert.ok(roots.length > 10, `${roots.length} system roots`);
  const root = roots.find((r) => r.validToDate > new Date() && r.validFromDate < new Date());
  assert.ok(root);
  assert.equal(certificateFacts([root.raw], "probe").valid, true);
});

test("bytes that are not a certificate throw (the handler counts the certificate as unseen)", () => {
  assert.throws(() => certificateFacts([Buffer.from("not a certificate")], "handshake", trust()));
  assert.throws(() => certificateFacts([], "handshake", trust()));
});
