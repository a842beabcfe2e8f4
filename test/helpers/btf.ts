// Reads struct layouts from the BTF of a built BPF object (bpftool btf dump -j).
import { execFileSync } from "node:child_process";

interface BtfMember {
  name: string;
  type_id: number;
  bits_offset: number;
}

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: BtfMember[];
}

export interface StructLayout {
  size: number;
  members: { name: string; offset: number; size: number }[];
}

export function readStructs(objectPath: string): Map<string, StructLayout> {
  const dump = JSON.parse(
    execFileSync("bpftool", ["btf", "dump", "file", objectPath, "-j"], { encoding: "utf8" }),
  ) as { types: BtfType[] };
  const byId = new Map(dump.types.map((t) => [t.id, t]));

  const sizeOf = (id: number): number => {
    const t = byId.get(id);
    if (!t) throw new Error(`BTF type ${id} missing in ${objectPath}`);
    if (t.kind === "ARRAY") return (t.nr_elems ?? 0) * sizeOf(t.type_id ?? 0);
    if (t.kind === "TYPEDEF" || t.kind === "CONST" || t.kind === "VOLATILE")
      return sizeOf(t.type_id ?? 0);
    if (t.kind === "PTR") return 8;
    return t.size ?? 0;
  };

  const structs = new Map<string, StructLayout>();
  for (const t of dump.types) {
    if (t.kind !== "STRUCT" || !t.name || !t.members) continue;
    structs.set(t.name, {
      size: t.size ?? 0,
      members: t.members.map((m) => ({
        name: m.name,
        offset: m.bits_offset / 8,
        size: sizeOf(m.type_id),
      })),
    });
  }
  return structs;
}

/**
 * Enum values by enum name, then by enumerator name. From bpftool's text dump: its JSON dump
 * prints an unsigned 32-bit value above 2^31 sign-extended to 64 bits, past what a number holds.
 */
export function readEnums(objectPath: string): Map<string, Map<string, number>> {
  const dump = execFileSync("bpftool", ["btf", "dump", "file", objectPath], { encoding: "utf8" });
  const enums = new Map<string, Map<string, number>>();
  let current: Map<string, number> | undefined;
  for (const line of dump.split("\n")) {
    const head = /^\[\d+\] ENUM '([^']+)'/.exec(line);
    if (head) {
      current = new Map();
      enums.set(head[1]!, current);
      continue;
    }
    const value = /^\t'([^']+)' val=(-?\d+)$/.exec(line);
    if (value && current) current.set(value[1]!, Number(value[2]));
    else current = undefined;
  }
  return enums;
}
