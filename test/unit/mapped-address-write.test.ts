// The kernel's 16-byte form of an address written in place (the key of a DNS client's original
// destination, written into one buffer query after query): the same bytes mappedAddress makes,
// whatever the buffer held before, and the same error for text that is no address.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mappedAddress, writeMappedAddress } from "../../src/datapath/address.ts";

const ADDRESSES = [
  "127.0.0.1",
  "10.240.3.251",
  "0.0.0.0",
  "255.255.255.255",
  "::1",
  "fd00::53",
  "2001:db8:1:2:3:4:5:6",
];

test("an address written in place is mappedAddress's bytes, after any other address", () => {
  const out = Buffer.alloc(20, 0xaa);
  for (const before of ADDRESSES)
    for (const ip of ADDRESSES) {
      writeMappedAddress(before, out, 0);
      writeMappedAddress(ip, out, 0);
      assert.deepEqual(out.subarray(0, 16), mappedAddress(ip), `${ip} after ${before}`);
      assert.deepEqual(out.subarray(16), Buffer.alloc(4, 0xaa), "nothing past the address");
    }
});

test("an address is written at its offset", () => {
  const out = Buffer.alloc(20, 0xaa);
  writeMappedAddress("192.0.2.1", out, 4);
  assert.deepEqual(out.subarray(4), mappedAddress("192.0.2.1"));
  assert.deepEqual(out.subarray(0, 4), Buffer.alloc(4, 0xaa));
});

test("text that is no address fails as mappedAddress does", () => {
  for (const bad of ["", "1.2.3", "1.2.3.4.5", "1.2.3.256", "not an address"]) {
    const expected = (() => {
      try {
        mappedAddress(bad);
        return null;
      } catch (err) {
        return (err as Error).message;
      }
    })();
    assert.throws(() => writeMappedAddress(bad, Buffer.alloc(16), 0), { message: expected! });
  }
});
