// A little-endian struct codec with explicit offsets, checked against the BTF of the built
// BPF objects by test/unit/abi.test.ts so no layout is ever hand-synced.

export type Scalar = "u8" | "u16" | "u32" | "u64" | "be16" | "be32";
export type FieldSpec = { offset: number; type: Scalar } | { offset: number; bytes: number };

type ValueOf<F extends FieldSpec> = F extends { bytes: number }
  ? Buffer
  : F extends { type: "u64" }
    ? bigint
    : number;

export type Decoded<S extends Record<string, FieldSpec>> = { [K in keyof S]: ValueOf<S[K]> };

export interface StructCodec<S extends Record<string, FieldSpec>> {
  /** The C struct name in bpf/include/moat_abi.h. */
  name: string;
  size: number;
  fields: S;
  decode(buf: Buffer, offset?: number): Decoded<S>;
  encode(value: Partial<Decoded<S>>, buf?: Buffer, offset?: number): Buffer;
}

function read(buf: Buffer, at: number, type: Scalar): number | bigint {
  switch (type) {
    case "u8":
      return buf.readUInt8(at);
    case "u16":
      return buf.readUInt16LE(at);
    case "u32":
      return buf.readUInt32LE(at);
    case "u64":
      return buf.readBigUInt64LE(at);
    case "be16":
      return buf.readUInt16BE(at);
    case "be32":
      return buf.readUInt32BE(at);
  }
}

function write(buf: Buffer, at: number, type: Scalar, value: number | bigint): void {
  switch (type) {
    case "u8":
      buf.writeUInt8(Number(value), at);
      return;
    case "u16":
      buf.writeUInt16LE(Number(value), at);
      return;
    case "u32":
      buf.writeUInt32LE(Number(value), at);
      return;
    case "u64":
      buf.writeBigUInt64LE(BigInt(value), at);
      return;
    case "be16":
      buf.writeUInt16BE(Number(value), at);
      return;
    case "be32":
      buf.writeUInt32BE(Number(value), at);
      return;
  }
}

/** Size in bytes of one field, for the BTF check. */
export function fieldSize(spec: FieldSpec): number {
  if ("bytes" in spec) return spec.bytes;
  return { u8: 1, u16: 2, u32: 4, u64: 8, be16: 2, be32: 4 }[spec.type];
}

export function defineStruct<S extends Record<string, FieldSpec>>(
  name: string,
  size: number,
  fields: S,
): StructCodec<S> {
  const entries = Object.entries(fields);
  return {
    name,
    size,
    fields,
    decode(buf, offset = 0) {
      const out: Record<string, number | bigint | Buffer> = {};
      for (const [key, spec] of entries) {
        const at = offset + spec.offset;
        out[key] =
          "bytes" in spec
            ? Buffer.from(buf.subarray(at, at + spec.bytes))
            : read(buf, at, spec.type);
      }
      return out as Decoded<S>;
    },
    encode(value, buf = Buffer.alloc(size), offset = 0) {
      for (const [key, spec] of entries) {
        const v = (value as Record<string, number | bigint | Buffer | undefined>)[key];
        if (v === undefined) continue;
        const at = offset + spec.offset;
        if ("bytes" in spec) (v as Buffer).copy(buf, at, 0, spec.bytes);
        else write(buf, at, spec.type, v as number | bigint);
      }
      return buf;
    },
  };
}
