// The redirects group's converter (layout 1 -> 2): the targets and the exempt process are kept;
// each original destination is carried under the wider key of layout 2 (moat_client), for moat's
// own network namespace (0), its value as it was.
import { test } from "node:test";
import assert from "node:assert/strict";
import "../../src/datapath/map-converters.ts";
import { converterFor } from "../../src/datapath/map-migration.ts";
import { client, endpoint } from "../../src/datapath/abi.ts";
import { mappedAddress } from "../../src/datapath/address.ts";

test("layout 1's originals are carried into layout 2 for moat's namespace; targets kept", () => {
  const c = converterFor("redirects", 1, 2);
  assert.ok(c, "a converter from layout 1");
  assert.deepEqual(c.maps.redirect_targets, { keep: true });
  assert.deepEqual(c.maps.redirect_exempt, { keep: true });
  const plan = c.maps.originals;
  assert.ok(plan && "convert" in plan);
  const value = Buffer.alloc(96, 7);
  for (const [addr, port, protocol] of [
    [mappedAddress("127.0.0.1"), 40001, 17],
    [Buffer.alloc(16), 40002, 17],
    [mappedAddress("::1"), 40003, 6],
  ] as const) {
    const out = plan.convert(endpoint.encode({ addr, port, protocol }), value);
    assert.ok(out);
    assert.equal(out.key.length, client.size);
    assert.deepEqual(client.decode(out.key), { addr, port, protocol, netns: 0n });
    assert.equal(out.value, value);
  }
});
