// Every TS codec matches the C struct in the built objects' BTF: size, offsets, field sizes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { codecs } from "../../src/datapath/abi.ts";
import { fieldSize } from "../../src/datapath/struct.ts";
import { readStructs, type StructLayout } from "../helpers/btf.ts";

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
