// A client cannot show moat another server name than a server reads: Initials in a datagram
// under 1200 bytes are ignored, as a server discards them (RFC 9000 14.1), so they neither add
// CRYPTO bytes nor fix the connection ID the reader follows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { QuicInitialReader, readInitials } from "../../../src/l7/quic/index.ts";
import { clientHello, cryptoFrame, sealInitial } from "../../helpers/quic-initial.ts";

const dcid = Buffer.from("0011223344556677", "hex");
const dcid2 = Buffer.from("8899aabbccddeeff", "hex");
const decoy = clientHello("harmless.example", ["h3"], 0);
const real = clientHello("evil.example", ["h3"], 0);

test("a short datagram's Initial is not read: the padded one after it is", () => {
  const short = sealInitial(dcid, 0, cryptoFrame(0, decoy));
  assert.ok(short.length < 1200);
  assert.deepEqual(readInitials(short), []);
  const r = new QuicInitialReader();
  assert.equal(r.feed(short), undefined);
  assert.equal(r.feed(sealInitial(dcid, 0, cryptoFrame(0, real), 1200))?.sni, "evil.example");
});

test("a short datagram under another connection ID does not fix the one followed", () => {
  const r = new QuicInitialReader();
  assert.equal(r.feed(sealInitial(dcid2, 0, cryptoFrame(0, decoy))), undefined);
  assert.equal(r.feed(sealInitial(dcid, 0, cryptoFrame(0, real), 1200))?.sni, "evil.example");
});
