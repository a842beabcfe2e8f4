// What the kernel holds once a policy's tables are written (src/datapath/table-maps.ts): each
// array table reads as the image's array (entries not written read 0), the remote x Y hash as the
// image's (remote, Y) -> rule entries, and the rules array as each rule's action, mode, log, flags
// and longest duration. The contents are caught before any map is made, so no kernel is needed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Action, Mode, RuleFlag, rule as ruleCodec } from "../../src/datapath/abi.ts";
import { drain } from "../../src/datapath/in-turns.ts";
import type { BpfMap } from "../../src/datapath/native.d.ts";
import {
  rulesMap,
  tableMaps,
  type MapContent,
  type MapMaker,
} from "../../src/datapath/table-maps.ts";
import { parsePolicy } from "../../src/config/index.ts";
import { compile } from "../../src/policy/compile/compile.ts";
import {
  PORT_CLASS_SIZE,
  SPORT_CLASS_SIZE,
  type ClassifierImage,
} from "../../src/policy/compile/image.ts";
import { mixedModel } from "../../bench/compile.ts";

/** A maker that keeps each table's content by its name instead of making a map. */
function catcher(): { make: MapMaker; got: Map<string, MapContent> } {
  const got = new Map<string, MapContent>();
  // eslint-disable-next-line require-yield
  const make: MapMaker = function* (content) {
    got.set(content.name, content);
    return { close() {} } as BpfMap;
  };
  return { make, got };
}

/** An array map's values after its entries are written over zeros: u32 values. */
function arrayOf(c: MapContent): number[] {
  assert.equal(c.keySize, 4);
  assert.equal(c.valueSize, 4);
  const out = new Array<number>(c.maxEntries).fill(0);
  for (let i = 0; i < c.count; i++) {
    const key = c.keys.readUInt32LE(4 * i);
    assert.ok(key < c.maxEntries, `${c.name}: key ${key} past ${c.maxEntries}`);
    out[key] = c.values.readUInt32LE(4 * i);
  }
  return out;
}

function checkImageTables(image: ClassifierImage): void {
  const { make, got } = catcher();
  drain(tableMaps(image, "", make));
  const arrays: [string, Uint32Array, number][] = [
    ["moat_port_cls", image.portClass, PORT_CLASS_SIZE],
    ["moat_sport_cls", image.sportClass, SPORT_CLASS_SIZE],
    ["moat_lx", image.lx, image.lx.length],
    ["moat_px", image.px, image.px.length],
    ["moat_any_rem", image.anyRemote, image.anyRemote.length],
    ["moat_rem_only", image.remoteOnly, image.remoteOnly.length],
  ];
  for (const [name, data, size] of arrays) {
    const c = got.get(name)!;
    assert.equal(c.maxEntries, size, name);
    assert.deepEqual(arrayOf(c), [...data], name);
  }
  const ry = got.get("moat_remote_y")!;
  const { r, y, rule } = image.remoteY;
  assert.equal(ry.count, r.length);
  assert.equal(ry.keySize, 8);
  for (let i = 0; i < r.length; i++) {
    assert.equal(ry.keys.readUInt32LE(8 * i), r[i]);
    assert.equal(ry.keys.readUInt32LE(8 * i + 4), y[i]);
    assert.equal(ry.values.readUInt32LE(4 * i), rule[i]);
  }

  const rules = catcher();
  drain(rulesMap(image, rules.make));
  const c = rules.got.get("moat_rules")!;
  assert.equal(c.count, image.rules.length);
  image.rules.forEach((r, i) => {
    assert.equal(c.keys.readUInt32LE(4 * i), i);
    const got = ruleCodec.decode(c.values, i * ruleCodec.size);
    assert.deepEqual(got, {
      action: Action[r.action],
      mode: Mode[r.mode],
      log: r.log ? 1 : 0,
      flags: (r.layer7 ? RuleFlag.layer7 : 0) | (r.limit ? RuleFlag.limited : 0),
      max_duration_s: Math.min(r.maxDurationSeconds, 0xffffffff),
    });
  });
}

test("a big policy's tables hold the image's arrays, its remote x Y entries and its rules", () => {
  checkImageTables(compile(mixedModel(3000)));
});

test("small policies' tables: sparse arrays, rules with limits, durations and detect mode", () => {
  const model = parsePolicy(
    `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: web
    direction: ingress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [80, 443], max_duration: 2h }
    rate_limit: { rate: "10/s" }
  - name: dns
    direction: egress
    action: allow
    mode: detect
    layer3: { remote: [10.0.0.0/8, "2001:db8::/32"] }
    layer4: { protocol: udp, port: [53] }
  - name: ssh
    direction: ingress
    action: block
    layer3: { remote: [192.0.2.0/24] }
    layer4: { protocol: tcp, port: [22], source_port: [1024-65535] }
`,
    "p.yaml",
  );
  checkImageTables(compile(model));
});
