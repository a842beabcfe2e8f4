// Every TS codec matches the C struct in the built objects' BTF: size, offsets, field sizes; and
// every constant and enum user space copies from bpf/include/moat_abi.h has the BTF's values.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as abi from "../../src/datapath/abi.ts";
import { codecs } from "../../src/datapath/abi.ts";
import { POLICY_TABLES } from "../../src/datapath/policy-maps.ts";
import { fieldSize } from "../../src/datapath/struct.ts";
import { BASICS } from "../../src/policy/network-basics.ts";
import * as image from "../../src/policy/compile/image.ts";
import { ANY_PROCESS_CLASS } from "../../src/policy/compile/process.ts";
import { LIMIT_CONNECTION_CHUNK } from "../../src/policy/rate-limit.ts";
import {
  DIR4_BITMAP,
  DIR4_BLOCK_HEAD,
  DIR4_TOP,
  DIR4_UNIFORM,
  DIR4_WIDE,
} from "../../src/policy/compile/dir4.ts";
import { readEnums, readStructs, type StructLayout } from "../helpers/btf.ts";

const dir = "build/bpf";
// moat.bpf.o first: an object left over from an older build must not shadow its structs
const objects = readdirSync(dir)
  .filter((f) => f.endsWith(".bpf.o"))
  .sort((a, b) => Number(b === "moat.bpf.o") - Number(a === "moat.bpf.o") || a.localeCompare(b));

function findLayout(name: string): StructLayout {
  for (const file of objects) {
    const layout = readStructs(join(dir, file)).get(name);
    if (layout) return layout;
  }
  throw new Error(`struct ${name} is in no BTF of ${dir}/*.bpf.o (is it used by a program?)`);
}

for (const codec of codecs) {
  test(`codec ${codec.name} matches BTF`, () => {
    const layout = findLayout(codec.name);
    assert.equal(codec.size, layout.size, `${codec.name} size`);
    for (const member of layout.members) {
      if (member.name.startsWith("pad")) continue;
      const spec = (codec.fields as Record<string, { offset: number } | undefined>)[member.name];
      assert.ok(spec, `${codec.name}.${member.name} has no codec field`);
      assert.equal(spec.offset, member.offset, `${codec.name}.${member.name} offset`);
      assert.equal(
        fieldSize(codec.fields[member.name as keyof typeof codec.fields]),
        member.size,
        `${codec.name}.${member.name} size`,
      );
    }
    for (const name of Object.keys(codec.fields)) {
      assert.ok(
        layout.members.some((m) => m.name === name),
        `${codec.name}.${name} is not in the C struct`,
      );
    }
  });
}

test("every struct of bpf/include/moat_abi.h has a codec", () => {
  const header = readFileSync("bpf/include/moat_abi.h", "utf8");
  const structs = [...header.matchAll(/^struct (moat_\w+) \{/gm)].map((m) => m[1]);
  assert.ok(structs.length > 0);
  assert.deepEqual(
    structs.filter((name) => !codecs.some((c) => c.name === name)),
    [],
    "structs without a codec in src/datapath/abi.ts",
  );
});

const enums = readEnums(join(dir, "moat.bpf.o"));

function enumOf(name: string): Map<string, number> {
  const values = enums.get(name);
  assert.ok(values, `enum ${name} is not in the BTF of ${dir}/moat.bpf.o`);
  return values;
}

/** camelCase -> UPPER_SNAKE: the C enumerator of a TS key (nonIp -> NON_IP). */
const upperSnake = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();

test("the constants user space copies match enum moat_abi_const", () => {
  const c = enumOf("moat_abi_const");
  const copies: [string, number, number | undefined][] = [
    ["datapath/abi.ts RULE_NONE", abi.RULE_NONE, c.get("MOAT_RULE_NONE")],
    ["compile/image.ts RULE_NONE", image.RULE_NONE, c.get("MOAT_RULE_NONE")],
    ["compile/image.ts PROTO_SLOTS", image.PROTO_SLOTS, c.get("MOAT_PROTO_SLOTS")],
    ["compile/image.ts PORT_CLASS_SIZE", image.PORT_CLASS_SIZE, c.get("MOAT_PORT_CLASS_SIZE")],
    ["compile/image.ts SPORT_CLASS_SIZE", image.SPORT_CLASS_SIZE, c.get("MOAT_SPORT_CLASS_SIZE")],
    ["compile/process.ts ANY_PROCESS_CLASS", ANY_PROCESS_CLASS, c.get("MOAT_ANY_PROCESS")],
    ["compile/dir4.ts DIR4_TOP", DIR4_TOP, c.get("MOAT_DIR4_TOP")],
    ["compile/dir4.ts DIR4_UNIFORM", DIR4_UNIFORM, c.get("MOAT_DIR4_UNIFORM")],
    ["compile/dir4.ts DIR4_BITMAP", DIR4_BITMAP, c.get("MOAT_DIR4_BITMAP")],
    ["compile/dir4.ts DIR4_WIDE", DIR4_WIDE, c.get("MOAT_DIR4_WIDE")],
    ["compile/dir4.ts DIR4_BLOCK_HEAD", DIR4_BLOCK_HEAD, c.get("MOAT_DIR4_BLOCK_HEAD")],
    ["datapath/abi.ts IMAGES", abi.IMAGES, c.get("MOAT_IMAGES")],
    ["datapath/abi.ts NAME_BINDINGS", abi.NAME_BINDINGS, c.get("MOAT_NAME_BINDINGS")],
    ["datapath/abi.ts NAME_JOURNAL", abi.NAME_JOURNAL, c.get("MOAT_NAME_JOURNAL")],
    ["datapath/abi.ts NAME_LEN", abi.NAME_LEN, c.get("MOAT_NAME_LEN")],
    [
      "policy/rate-limit.ts LIMIT_CONNECTION_CHUNK",
      LIMIT_CONNECTION_CHUNK,
      c.get("MOAT_LIMIT_CT_CHUNK"),
    ],
  ];
  for (const [copy, ts, btf] of copies) assert.equal(ts, btf, copy);
});

// each TS copy of an enum, the C enum and the prefix of its enumerators: the same names, values
const copiedEnums: [string, Record<string, number>, string, string][] = [
  ["Counter", abi.Counter, "moat_counter_index", "MOAT_CNT_"],
  ["EventType", abi.EventType, "moat_event_type", "MOAT_EV_"],
  ["Hook", abi.Hook, "moat_hook", "MOAT_HOOK_"],
  ["Direction", abi.Direction, "moat_direction", "MOAT_DIR_"],
  ["Action", abi.Action, "moat_action", "MOAT_ACTION_"],
  ["Mode", abi.Mode, "moat_mode", "MOAT_MODE_"],
  ["Unavailable", abi.Unavailable, "moat_unavailable", "MOAT_UNAVAILABLE_"],
  ["RedirectFlag", abi.RedirectFlag, "moat_redirect_flag", "MOAT_REDIRECT_"],
  ["RuleFlag", abi.RuleFlag, "moat_rule_flag", "MOAT_RULE_"],
  ["Reason", abi.Reason, "moat_reason", "MOAT_REASON_"],
  ["TcpState", abi.TcpState, "moat_tcp_state", "MOAT_TCP_"],
  ["CtFlag", abi.CtFlag, "moat_ct_flag", "MOAT_CT_"],
  ["PostRoute", abi.PostRoute, "moat_post_flag", "MOAT_POST_"],
  ["LimitAlgorithm", abi.LimitAlgorithm, "moat_limit_algorithm", "MOAT_LIMIT_"],
  ["LimitKeyFlag", abi.LimitKeyFlag, "moat_limit_key_flag", "MOAT_LIMIT_"],
  ["ScrubFlag", abi.ScrubFlag, "moat_scrub_flag", "MOAT_SCRUB_"],
  ["FloodCounter", abi.FloodCounter, "moat_flood_counter", "MOAT_FLOOD_"],
  ["FloodOn", abi.FloodOn, "moat_flood_on", "MOAT_FLOOD_ON_"],
  ["IdsConst", abi.IdsConst, "moat_ids_const", "MOAT_IDS_"],
];

for (const [tsName, ts, cName, prefix] of copiedEnums) {
  test(`abi.ts ${tsName} matches enum ${cName}`, () => {
    const fromTs = Object.entries(ts).map(([k, v]) => [prefix + upperSnake(k), v] as const);
    assert.deepEqual(new Map(fromTs), enumOf(cName));
  });
}

test("the policy tables are in the order of enum moat_lpm_table and enum moat_u32_table", () => {
  const byValue = (values: Map<string, number>): string[] =>
    [...values]
      .filter(([, v]) => v < values.size)
      .sort((a, b) => a[1] - b[1])
      .map(([n]) => n);
  const lpm = byValue(enumOf("moat_lpm_table"));
  const u32 = enumOf("moat_u32_table");
  assert.deepEqual(
    POLICY_TABLES.dir4.map((t) => `T_${t.slice(0, -1).toUpperCase()}`),
    lpm,
    "tbl_dir4",
  );
  assert.deepEqual(
    POLICY_TABLES.lpm6.map((t) => `T_${t.slice(0, -1).toUpperCase()}`),
    lpm,
    "tbl_lpm6",
  );
  assert.equal(POLICY_TABLES.u32.length, u32.get("T_U32_TABLES"), "T_U32_TABLES");
  assert.deepEqual(
    POLICY_TABLES.u32.map((t) => `T_${t.toUpperCase()}`),
    byValue(new Map([...u32].filter(([n]) => n !== "T_U32_TABLES"))),
    "tbl_u32",
  );
});

test("the basic networking classes have the bits of enum moat_basics", () => {
  const bits = [...enumOf("moat_basics").values()].sort((a, b) => a - b);
  assert.deepEqual(
    BASICS.map((b) => b.bit),
    bits,
  );
});
