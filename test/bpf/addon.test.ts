// The native addon against the real kernel: objects, maps, test runs, ring buffers, errors,
// pinning and every attach path. Needs root, `make bpf` and `make native`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  unlinkSync,
} from "node:fs";
import { join } from "node:path";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { hostname, tmpdir } from "node:os";
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { native } from "../../src/datapath/addon.ts";
import { NativeError } from "../../src/datapath/errors.ts";
import type { BpfMap, BpfObject, BpfProgram } from "../../src/datapath/native.d.ts";

const execFileAsync = promisify(execFile);
const addon = native();
const { BpfObject: Obj, BpfMap: Map_, BpfLink, RingBuffer } = addon;

const root = fileURLToPath(new URL("../../", import.meta.url));
const objPath = (name: string): string => `${root}build/bpf/test/${name}.bpf.o`;

// enum bpf_map_type / bpf_prog_type / xdp_action values used below.
const MAP_HASH = 1;
const MAP_ARRAY = 2;
const MAP_PERCPU_HASH = 5;
const MAP_LPM_TRIE = 11;
const MAP_ARRAY_OF_MAPS = 12;
const MAP_HASH_OF_MAPS = 13;
const MAP_RINGBUF = 27;
const PROG_XDP = 6;
const XDP_DROP = 1;
const XDP_PASS = 2;
const BPF_F_NO_PREALLOC = 1;

const tag = `moat-test-addon-${process.pid}`;
const pinDir = `/sys/fs/bpf/${tag}`;
const vethA = "mt-addon0";
const vethB = "mt-addon1";

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const u64 = (n: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};
const readU64 = (b: Buffer | null, off = 0): number => {
  assert.ok(b, "expected a value");
  return Number(b.readBigUInt64LE(off));
};

/** An Ethernet + IPv4 frame with the given IP protocol (6 TCP, 17 UDP), 60 bytes. */
function ipv4Frame(proto: number): Buffer {
  const f = Buffer.alloc(60);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(46, 16);
  f[22] = 64;
  f[23] = proto;
  f.set([10, 0, 0, 1], 26);
  f.set([10, 0, 0, 2], 30);
  return f;
}

function loadObject(name: string, prepare?: (o: BpfObject) => void): BpfObject {
  const path = objPath(name);
  assert.ok(existsSync(path), `${path} is missing: run 'make bpf'`);
  const o = Obj.open(path);
  prepare?.(o);
  o.load();
  return o;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function tryRun(cmd: string, args: string[]): { ok: boolean; out: string } {
  try {
    return { ok: true, out: sh(cmd, args) };
  } catch (err) {
    return { ok: false, out: String((err as { stderr?: unknown }).stderr ?? err) };
  }
}

function mountPoint(fstype: string): string | undefined {
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [pre, post] = line.split(" - ");
    if (!pre || !post) continue;
    if (post.split(" ")[0] === fstype) return pre.split(" ")[4];
  }
  return undefined;
}

function bpffsMounted(): boolean {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((l) => l.includes(" /sys/fs/bpf ") && l.includes(" - bpf "));
}

/** Asserts that `fn` throws NativeError with `code` (and returns it for more checks). */
function assertNativeError(fn: () => unknown, code: string): NativeError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof NativeError, `expected NativeError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

function removeVeth(): void {
  tryRun("ip", ["link", "del", vethA]);
}

function removePins(): void {
  if (!existsSync(pinDir)) return;
  for (const name of readdirSync(pinDir)) unlinkSync(`${pinDir}/${name}`);
  rmdirSync(pinDir);
}

before(() => {
  assert.equal(process.getuid?.(), 0, "the addon tests need root");
  // mounted as the daemon mounts it, and left mounted: the file beside this one in the tier
  // (and any daemon) pins there, and an unmount would take their pins away
  if (!bpffsMounted()) sh("mount", ["-t", "bpf", "bpf", "/sys/fs/bpf"]);
  removePins();
  mkdirSync(pinDir); // one level at a time on bpffs
  removeVeth();
  sh("ip", ["link", "add", vethA, "type", "veth", "peer", "name", vethB]);
  sh("ip", ["link", "set", vethA, "up"]);
  sh("ip", ["link", "set", vethB, "up"]);
});

after(() => {
  removeVeth();
  removePins();
});

test("loads an object and lists its maps and programs", () => {
  const o = Obj.open(objPath("addon_maps"));
  try {
    assert.equal(o.loaded, false);
    assert.equal(o.path, objPath("addon_maps"));
    const maps = new Map(o.maps().map((m) => [m.name, m]));
    assert.equal(maps.get("hash_map")?.type, MAP_HASH);
    assert.equal(maps.get("hash_map")?.keySize, 4);
    assert.equal(maps.get("hash_map")?.valueSize, 8);
    assert.equal(maps.get("lpm_map")?.type, MAP_LPM_TRIE);
    assert.equal(maps.get("lpm_map")?.flags, BPF_F_NO_PREALLOC);
    assert.equal(maps.get("outer_map")?.type, MAP_ARRAY_OF_MAPS);
    const progs = o.programs();
    assert.deepEqual(progs.map((p) => p.name).sort(), ["xdp_inner", "xdp_verdict"]);
    assert.ok(progs.every((p) => p.section === "xdp" && p.type === PROG_XDP));
    o.load();
    assert.equal(o.loaded, true);
    const prog = o.program("xdp_verdict");
    assert.equal(prog.name, "xdp_verdict");
    assert.equal(prog.section, "xdp");
    assert.equal(prog.type, PROG_XDP);
    assert.ok(prog.fd > 2 && prog.id() > 0);
    assertNativeError(() => o.map("no_such_map"), "ENOENT");
    assertNativeError(() => o.setMaxEntries("hash_map", 4), "EBUSY");
  } finally {
    o.close();
  }
  assert.equal(o.loaded, false);
});

test("setGlobal on a const volatile knob changes the test-run verdict", () => {
  const tcp = ipv4Frame(6);
  const udp = ipv4Frame(17);
  const plain = loadObject("addon_maps");
  const tuned = loadObject("addon_maps", (o) => {
    assertNativeError(() => o.setGlobal("drop_proto", Buffer.alloc(4)), "EINVAL");
    assertNativeError(() => o.setGlobal("no_such_global", Buffer.alloc(1)), "ENOENT");
    o.setGlobal("drop_proto", Buffer.from([6]));
  });
  try {
    const p = plain.program("xdp_verdict");
    const t = tuned.program("xdp_verdict");
    assert.equal(p.testRun({ data: udp }).retval, XDP_DROP);
    assert.equal(p.testRun({ data: tcp }).retval, XDP_PASS);
    assert.equal(t.testRun({ data: udp }).retval, XDP_PASS);
    assert.equal(t.testRun({ data: tcp }).retval, XDP_DROP);
  } finally {
    plain.close();
    tuned.close();
  }
});

test("setMaxEntries before load changes maxEntries", () => {
  const o = loadObject("addon_maps", (obj) => obj.setMaxEntries("batch_map", 16384));
  try {
    assert.equal(o.maps().find((m) => m.name === "batch_map")?.maxEntries, 16384);
    const m = o.map("batch_map");
    assert.equal(m.maxEntries, 16384);
    // The kernel agrees: the same map opened from a pin reports the new size.
    m.pin(`${pinDir}/batch_map`);
    const again = Map_.openPinned(`${pinDir}/batch_map`);
    assert.equal(again.maxEntries, 16384);
    assert.equal(again.id(), m.id());
    again.close();
    m.unpin(`${pinDir}/batch_map`);
  } finally {
    o.close();
  }
});

test("hash and array maps: lookup, update, delete, nextKey", () => {
  const o = loadObject("addon_maps");
  try {
    const h = o.map("hash_map");
    assert.equal(h.type, MAP_HASH);
    assert.equal(h.valuesPerKey, 1);
    assert.equal(h.valueBufferSize, 8);
    assert.equal(h.lookup(u32(7)), null);
    h.update(u32(7), u64(700));
    assert.equal(readU64(h.lookup(u32(7))), 700);
    h.update(u32(7), u64(701), 2 /* BPF_EXIST */);
    assert.equal(readU64(h.lookup(u32(7))), 701);
    assertNativeError(() => h.update(u32(7), u64(1), 1 /* BPF_NOEXIST */), "EEXIST");
    assert.equal(h.delete(u32(7)), true);
    assert.equal(h.delete(u32(7)), false);
    assert.equal(h.lookup(u32(7)), null);
    assertNativeError(() => h.lookup(Buffer.alloc(3)), "EINVAL");
    // lookupInto writes into the caller's buffer, and says whether the key was there
    const into = Buffer.alloc(8, 0xee);
    h.update(u32(9), u64(99));
    assert.equal(h.lookupInto(u32(9), into), true);
    assert.equal(readU64(into), 99);
    assert.equal(h.lookupInto(u32(7), into), false);
    assertNativeError(() => h.lookupInto(u32(9), Buffer.alloc(4)), "EINVAL");
    h.delete(u32(9));
    assertNativeError(() => h.update(u32(1), Buffer.alloc(4)), "EINVAL");

    const keys = [3, 14, 15, 92, 65, 35];
    for (const k of keys) h.update(u32(k), u64(k * 10));
    const seen: number[] = [];
    for (let k = h.nextKey(null); k; k = h.nextKey(k)) seen.push(k.readUInt32LE());
    assert.deepEqual(
      seen.sort((a, b) => a - b),
      [...keys].sort((a, b) => a - b),
    );

    const a = o.map("array_map");
    assert.equal(a.type, MAP_ARRAY);
    assert.equal(readU64(a.lookup(u32(3))), 0);
    a.update(u32(3), u64(33));
    assert.equal(readU64(a.lookup(u32(3))), 33);
    assertNativeError(() => a.update(u32(8), u64(1)), "E2BIG");
    let count = 0;
    for (let k = a.nextKey(null); k; k = a.nextKey(k)) count++;
    assert.equal(count, 8);

    // lookupAndDelete and lookupAndDeleteBatch empty what they return.
    for (const k of keys) h.update(u32(k), u64(k * 10));
    assert.equal(readU64(h.lookupAndDelete(u32(3))), 30);
    assert.equal(h.lookup(u32(3)), null);
    const page = h.lookupAndDeleteBatch(null, 100);
    assert.equal(page.count, keys.length - 1);
    assert.equal(page.next, null);
    assert.equal(h.nextKey(null), null);

    // A frozen map is read-only for user space.
    const frozen = Map_.create({ type: MAP_ARRAY, keySize: 4, valueSize: 8, maxEntries: 1 });
    frozen.update(u32(0), u64(5));
    frozen.freeze();
    assertNativeError(() => frozen.update(u32(0), u64(6)), "EPERM");
    assert.equal(readU64(frozen.lookup(u32(0))), 5);
    frozen.close();

    a.close();
    assert.equal(a.fd, -1);
    assertNativeError(() => a.lookup(u32(3)), "EBADF");
  } finally {
    o.close();
  }
});

test("batch update of 10,000 entries, paged lookupBatch, deleteBatch", () => {
  const o = loadObject("addon_maps", (obj) => obj.setMaxEntries("batch_map", 16384));
  try {
    const m = o.map("batch_map");
    const n = 10_000;
    const keys = Buffer.alloc(n * 4);
    const values = Buffer.alloc(n * 8);
    for (let i = 0; i < n; i++) {
      keys.writeUInt32LE(i, i * 4);
      values.writeBigUInt64LE(BigInt(i * 3 + 1), i * 8);
    }
    assert.equal(m.updateBatch(keys, values, n), n);

    const got = new Map<number, number>();
    let cursor: Buffer | null = null;
    let pages = 0;
    do {
      const page = m.lookupBatch(cursor, 1000);
      assert.equal(page.keys.length, page.count * 4);
      assert.equal(page.values.length, page.count * 8);
      for (let i = 0; i < page.count; i++) {
        got.set(page.keys.readUInt32LE(i * 4), Number(page.values.readBigUInt64LE(i * 8)));
      }
      cursor = page.next;
      pages++;
    } while (cursor);
    assert.ok(pages >= 10, `${pages} pages`);
    assert.equal(got.size, n);
    for (let i = 0; i < n; i++) assert.equal(got.get(i), i * 3 + 1);

    assert.equal(m.deleteBatch(keys, n), n);
    assert.equal(m.nextKey(null), null);
    // A missing key stops the batch and reports how far it got.
    m.update(u32(1), u64(1));
    assert.equal(m.deleteBatch(Buffer.concat([u32(1), u32(2), u32(3)]), 3), 1);
  } finally {
    o.close();
  }
});

test("per-CPU map: a value for every possible CPU", () => {
  const o = loadObject("addon_maps");
  try {
    const m = o.map("percpu_map");
    const ncpus = addon.numPossibleCpus();
    assert.ok(ncpus >= 1);
    assert.equal(m.type, MAP_PERCPU_HASH);
    assert.equal(m.valuesPerKey, ncpus);
    assert.equal(m.valueBufferSize, ncpus * 8);
    const value = Buffer.alloc(m.valueBufferSize);
    for (let c = 0; c < ncpus; c++) value.writeBigUInt64LE(BigInt(1000 + c), c * 8);
    m.update(u32(5), value);
    const back = m.lookup(u32(5));
    assert.ok(back);
    assert.equal(back.length, ncpus * 8);
    for (let c = 0; c < ncpus; c++) assert.equal(readU64(back, c * 8), 1000 + c);
    // Batches carry per-CPU values too.
    const page = m.lookupBatch(null, 64);
    assert.equal(page.count, 1);
    assert.deepEqual(page.values, back);
  } finally {
    o.close();
  }
});

test("LPM trie: longest prefix wins", () => {
  const o = loadObject("addon_maps");
  try {
    const m = o.map("lpm_map");
    const key = (prefixlen: number, addr: string): Buffer => {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(prefixlen, 0); // host order (x86-64)
      b.set(addr.split(".").map(Number), 4); // network order
      return b;
    };
    m.update(key(8, "10.0.0.0"), u32(8));
    m.update(key(24, "10.1.2.0"), u32(24));
    assert.equal(m.lookup(key(32, "10.1.2.3"))?.readUInt32LE(), 24);
    assert.equal(m.lookup(key(32, "10.9.9.9"))?.readUInt32LE(), 8);
    assert.equal(m.lookup(key(32, "192.168.0.1")), null);
    assert.equal(m.delete(key(24, "10.1.2.0")), true);
    assert.equal(m.lookup(key(32, "10.1.2.3"))?.readUInt32LE(), 8);
  } finally {
    o.close();
  }
});

test("map-in-map: setInner swaps the inner map and the verdict follows", () => {
  const o = loadObject("addon_maps");
  const inner = (verdict: number): BpfMap => {
    const m = Map_.create({ type: MAP_ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
    m.update(u32(0), u32(verdict));
    return m;
  };
  const drop = inner(XDP_DROP);
  const pass = inner(XDP_PASS);
  try {
    const outer = o.map("outer_map");
    const prog = o.program("xdp_inner");
    const frame = ipv4Frame(6);
    // The statically initialised inner map holds 0 = XDP_ABORTED.
    assert.equal(prog.testRun({ data: frame }).retval, 0);
    outer.setInner(u32(0), drop);
    assert.equal(prog.testRun({ data: frame }).retval, XDP_DROP);
    outer.setInner(u32(0), pass);
    assert.equal(prog.testRun({ data: frame }).retval, XDP_PASS);
    // User space reads an outer slot as the inner map's id.
    assert.equal(outer.lookup(u32(0))?.readUInt32LE(), pass.id());

    // A standalone hash-of-maps created with an inner template.
    const hom = Map_.create({
      type: MAP_HASH_OF_MAPS,
      keySize: 4,
      valueSize: 4,
      maxEntries: 4,
      name: "test_hom",
      innerMap: drop,
    });
    try {
      assert.equal(hom.name, "test_hom");
      assert.equal(hom.type, MAP_HASH_OF_MAPS);
      hom.setInner(u32(9), pass);
      assert.equal(hom.lookup(u32(9))?.readUInt32LE(), pass.id());
    } finally {
      hom.close();
    }
  } finally {
    drop.close();
    pass.close();
    o.close();
  }
});

test("XDP test run: verdicts, repeat and duration, dataOut", async () => {
  const o = loadObject("addon_maps");
  try {
    const p = o.program("xdp_verdict");
    const udp = ipv4Frame(17);
    const tcp = ipv4Frame(6);
    const r1 = p.testRun({ data: udp });
    assert.equal(r1.retval, XDP_DROP);
    const r2 = p.testRun({ data: tcp, repeat: 1000 });
    assert.equal(r2.retval, XDP_PASS);
    assert.ok(r2.duration > 0, `duration ${r2.duration}`);
    assert.deepEqual(r2.dataOut, tcp);
    assert.equal(r2.ctxOut, null);
    // struct xdp_md in and out: data_end must be the packet length.
    const ctx = Buffer.alloc(24);
    ctx.writeUInt32LE(tcp.length, 4);
    const r4 = p.testRun({ data: tcp, ctx });
    assert.equal(r4.retval, XDP_PASS);
    assert.equal(r4.ctxOut?.length, 24);
    assert.equal(r4.ctxOut?.readUInt32LE(4), tcp.length);
    const r3 = await p.testRunAsync({ data: udp, repeat: 100 });
    assert.equal(r3.retval, XDP_DROP);
    assert.deepEqual(r3.dataOut, udp);
    // Errors: an XDP run needs packet data.
    assertNativeError(() => p.testRun({}), "EINVAL");
    await assert.rejects(
      p.testRunAsync({}),
      (e: unknown) => e instanceof NativeError && e.code === "EINVAL",
    );
  } finally {
    o.close();
  }
});

interface RingRun {
  produced: number;
  received: number;
  dropped: number;
  ordered: boolean;
  wellFormed: boolean;
  batches: number;
  largestBatch: number;
  /** Most records one chunk delivered: above a ring's capacity means drained while produced. */
  largestChunk: number;
}

/**
 * Runs `produce` in async chunks of `chunk` runs while a RingBuffer drains the records, until
 * `enough` says so or `maxChunks` chunks ran.
 */
async function ringRun(
  ringBytes: number,
  chunk: number,
  maxBatch: number,
  maxChunks: number,
  enough: (run: RingRun) => boolean,
): Promise<RingRun> {
  const o = loadObject("addon_ringbuf", (obj) => obj.setMaxEntries("events", ringBytes));
  const events = o.map("events");
  assert.equal(events.type, MAP_RINGBUF);
  assert.equal(events.maxEntries, ringBytes);
  const prog: BpfProgram = o.program("produce");
  const run: RingRun = {
    produced: 0,
    received: 0,
    dropped: 0,
    ordered: true,
    wellFormed: true,
    batches: 0,
    largestBatch: 0,
    largestChunk: 0,
  };
  let last = -1;
  const ring = new RingBuffer(
    events,
    (batch, count) => {
      let off = 0;
      for (let i = 0; i < count; i++) {
        const len = batch.readUInt32LE(off);
        if (len !== 8) run.wellFormed = false;
        const seq = Number(batch.readBigUInt64LE(off + 4));
        if (seq <= last) run.ordered = false;
        last = seq;
        off += (4 + len + 7) & ~7;
      }
      if (off !== batch.length) run.wellFormed = false;
      run.received += count;
      run.batches++;
      run.largestBatch = Math.max(run.largestBatch, count);
    },
    { maxBatch },
  );
  try {
    const frame = ipv4Frame(17);
    for (let n = 0; n < maxChunks && !enough(run); n++) {
      const before = run.received;
      const r = await prog.testRunAsync({ data: frame, repeat: chunk });
      assert.equal(r.retval, XDP_PASS);
      run.produced += chunk;
      ring.drain();
      run.largestChunk = Math.max(run.largestChunk, run.received - before);
    }
    const perCpu = o.map("drops").lookup(u32(0));
    assert.ok(perCpu);
    for (let off = 0; off < perCpu.length; off += 8) run.dropped += readU64(perCpu, off);
    return run;
  } finally {
    ring.close();
    o.close();
  }
}

test("ring buffer: records are drained while the kernel produces, in order, loss counted exactly", async (t) => {
  // A 1 MiB ring holds 65,536 records of 16 bytes; a chunk of 250,000 runs that delivers more
  // than that was drained by the event loop while the test run was in flight. How soon that
  // happens depends on the scheduler, so chunks repeat until it has (at most 40 of them).
  const ringFull = (1 << 20) / 16;
  const run = await ringRun(1 << 20, 250_000, 4096, 40, (r) => r.largestChunk > ringFull);
  t.diagnostic(
    `produced ${run.produced}, received ${run.received}, dropped ${run.dropped}, ` +
      `${run.batches} batches (largest ${run.largestBatch}), most in one chunk ${run.largestChunk}`,
  );
  assert.equal(run.wellFormed, true, "records are u32 LE length + bytes + pad to 8");
  assert.equal(run.ordered, true, "sequence numbers strictly increase");
  assert.equal(run.received + run.dropped, run.produced);
  assert.ok(run.largestBatch <= 4096);
  assert.ok(run.largestChunk > ringFull, "records were drained during the runs");
});

test("ring buffer: a small ring drops, and drops are counted exactly", async (t) => {
  const run = await ringRun(4096, 100_000, 64, 2, () => false);
  t.diagnostic(`received ${run.received}, dropped ${run.dropped}, ${run.batches} batches`);
  assert.equal(run.wellFormed, true);
  assert.equal(run.ordered, true);
  assert.ok(run.dropped > 0, "a 4 KiB ring must overflow");
  assert.ok(run.received > 0);
  assert.ok(run.largestBatch <= 64);
  assert.equal(run.received + run.dropped, run.produced);
});

test("ring buffer: construction errors and idempotent close", () => {
  const o = loadObject("addon_ringbuf");
  try {
    assert.throws(
      () => new RingBuffer(o.map("drops"), () => undefined),
      (e: unknown) => e instanceof NativeError && e.code === "EINVAL",
    );
    const ring = new RingBuffer(o.map("events"), () => undefined);
    assert.equal(ring.drain(), 0);
    ring.close();
    ring.close();
    assert.equal(ring.drain(), 0);

    // drain() hands an exception from onBatch back to its caller.
    const failing = new RingBuffer(o.map("events"), () => {
      throw new Error("consumer failed");
    });
    try {
      o.program("produce").testRun({ data: ipv4Frame(17), repeat: 3 });
      assert.throws(() => failing.drain(), /consumer failed/);
    } finally {
      failing.close();
    }
  } finally {
    o.close();
  }
});

test("a verifier rejection carries errno and the verifier log", () => {
  const o = Obj.open(objPath("addon_bad_verifier"));
  try {
    assert.throws(
      () => o.load(),
      (err: unknown) => {
        assert.ok(err instanceof NativeError, String(err));
        // The kernel answers EACCES for this (EINVAL on some versions).
        assert.ok(err.code === "EACCES" || err.code === "EINVAL", err.code);
        assert.ok(err.errno > 0);
        assert.equal(err.op, "bpf_object__load");
        assert.match(err.message, /bad_unchecked_read/);
        assert.match(err.log ?? "", /invalid access to packet/);
        return true;
      },
    );
  } finally {
    o.close();
  }
});

test("openPinned of a missing path throws ENOENT", () => {
  const err = assertNativeError(() => Map_.openPinned(`${pinDir}/does-not-exist`), "ENOENT");
  assert.equal(err.errno, 2);
  assert.equal(err.op, "bpf_obj_get");
  assert.match(err.message, /does-not-exist/);
  assertNativeError(() => BpfLink.openPinned(`${pinDir}/does-not-exist`), "ENOENT");
  assertNativeError(() => addon.ifindex("mt-no-such-if"), "ENODEV");
});

test("pin a map and open it from the pin", () => {
  const o = loadObject("addon_maps");
  const path = `${pinDir}/hash_map`;
  try {
    const m = o.map("hash_map");
    m.update(u32(42), u64(4242));
    m.pin(path);
    const p = Map_.openPinned(path);
    try {
      assert.equal(p.id(), m.id());
      assert.equal(p.type, MAP_HASH);
      assert.equal(p.keySize, 4);
      assert.equal(p.valueSize, 8);
      assert.equal(p.name, "hash_map");
      assert.equal(readU64(p.lookup(u32(42))), 4242);
      p.update(u32(43), u64(1));
      assert.equal(readU64(m.lookup(u32(43))), 1);
    } finally {
      p.close();
    }
  } finally {
    tryRun("rm", ["-f", path]);
    o.close();
  }
  assert.equal(existsSync(path), false);
});

function xdpShown(): string {
  return sh("ip", ["-d", "link", "show", "dev", vethA]);
}

test("XDP attach by link (generic and native), pin, destroy", () => {
  const o = loadObject("addon_attach");
  const pinPath = `${pinDir}/xdp_link`;
  try {
    const prog = o.program("xdp_pass");
    const ifindex = addon.ifindex(vethA);
    assert.ok(ifindex > 0);

    const generic = prog.attachXdp(ifindex, "generic");
    try {
      assert.equal(generic.kind, "xdp");
      const id = generic.id();
      assert.ok(id > 0);
      assert.match(xdpShown(), /xdpgeneric/);
      assert.match(
        sh("bpftool", ["link", "show", "id", String(id)]),
        new RegExp(`prog ${prog.id()}`),
      );
      // A second XDP program on the same device is refused while the link holds it.
      assertNativeError(() => prog.attachXdp(ifindex, "generic"), "EBUSY");
    } finally {
      generic.destroy();
    }
    generic.destroy(); // idempotent
    assertNativeError(() => generic.id(), "EBADF");
    assert.doesNotMatch(xdpShown(), /xdpgeneric|prog\/xdp/);

    const nativeLink = prog.attachXdp(ifindex, "native");
    const id = nativeLink.id();
    assert.match(xdpShown(), /prog\/xdp id/);
    nativeLink.pin(pinPath);
    nativeLink.destroy();
    // Pinned: still attached after the creating handle is gone.
    assert.match(xdpShown(), /prog\/xdp id/);
    const reopened = BpfLink.openPinned(pinPath);
    assert.equal(reopened.kind, "pinned");
    assert.equal(reopened.id(), id);
    reopened.unpin();
    assert.equal(existsSync(pinPath), false);
    reopened.destroy();
    assert.doesNotMatch(xdpShown(), /prog\/xdp/);
    assert.equal(tryRun("bpftool", ["link", "show", "id", String(id)]).ok, false);
  } finally {
    tryRun("rm", ["-f", pinPath]);
    o.close();
  }
});

test("a second object reuses the first one's map and takes over its XDP link in place", () => {
  const first = loadObject("addon_attach");
  const shared = first.map("deny_port");
  const second = loadObject("addon_attach", (o) => o.reuseMap("deny_port", shared));
  const ifindex = addon.ifindex(vethA);
  const link = first.program("xdp_pass").attachXdp(ifindex, "generic");
  try {
    const reused = second.map("deny_port");
    assert.equal(reused.id(), shared.id(), "one map, two objects");
    reused.update(u32(0), u32(8080));
    assert.deepEqual(shared.lookup(u32(0)), u32(8080));

    const id = link.id();
    const next = second.program("xdp_pass");
    link.update(next);
    assert.equal(link.id(), id, "the same link");
    assert.match(
      sh("bpftool", ["link", "show", "id", String(id)]),
      new RegExp(`prog ${next.id()}`),
    );
    assert.equal(addon.xdpAttachMode(ifindex), "generic");
    assertNativeError(() => link.update({ fd: -1 } as BpfProgram), "EBADF");
    reused.close();
  } finally {
    link.destroy();
    shared.close();
    first.close();
    second.close();
  }
  assert.equal(addon.xdpAttachMode(ifindex), "none");
});

test("TC attach: tcx link, and the clsact filter fallback", () => {
  const o = loadObject("addon_attach");
  try {
    const prog = o.program("tc_pass");
    const ifindex = addon.ifindex(vethA);

    const tcx = prog.attachTc(ifindex, "ingress");
    try {
      assert.equal(tcx.kind, "tcx");
      const shown = JSON.parse(sh("bpftool", ["link", "show", "id", String(tcx.id()), "-j"])) as {
        prog_id: number;
      };
      assert.equal(shown.prog_id, prog.id());
    } finally {
      tcx.destroy();
    }
    const egress = prog.attachTc(ifindex, "egress", { mode: "tcx" });
    const egressId = egress.id();
    egress.destroy();
    assert.equal(tryRun("bpftool", ["link", "show", "id", String(egressId)]).ok, false);

    const filter = prog.attachTc(ifindex, "egress", { mode: "clsact" });
    try {
      assert.equal(filter.kind, "tc");
      assert.equal(filter.fd, -1);
      assert.equal(filter.id(), 0);
      assert.match(sh("tc", ["filter", "show", "dev", vethA, "egress"]), /tc_pass/);
      assertNativeError(() => filter.pin(`${pinDir}/tc`), "EOPNOTSUPP");
    } finally {
      filter.destroy();
    }
    filter.destroy();
    assert.doesNotMatch(sh("tc", ["filter", "show", "dev", vethA, "egress"]), /tc_pass/);
  } finally {
    o.close();
  }
});

test("cgroup connect4 attach: connect() in the cgroup fails with EPERM until destroyed", async () => {
  const cgroupRoot = mountPoint("cgroup2");
  assert.ok(cgroupRoot, "no cgroup2 mount in /proc/self/mountinfo");
  const cg = `${cgroupRoot}/${tag}`;
  const server = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const o = loadObject("addon_attach");
  mkdirSync(cg);
  const connectFromCgroup = async (): Promise<string> => {
    const script = `echo $$ > ${cg}/cgroup.procs && exec 3<>/dev/tcp/127.0.0.1/${port} && echo connected`;
    try {
      const { stdout } = await execFileAsync("bash", ["-c", script]);
      return stdout.trim();
    } catch (err) {
      return String((err as { stderr?: unknown }).stderr);
    }
  };
  try {
    o.map("deny_port").update(u32(0), u32(port));
    const link = o.program("connect4_deny").attachCgroup(cg, "connect4");
    try {
      assert.equal(link.kind, "cgroup");
      assert.ok(link.id() > 0);
      assert.match(await connectFromCgroup(), /Operation not permitted/);
    } finally {
      link.destroy();
    }
    assert.equal(await connectFromCgroup(), "connected");
  } finally {
    o.close();
    server.close();
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(cg);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }
  assert.equal(existsSync(cg), false);
});

test("uprobe attach counts calls of a libc function in this process", () => {
  const libc = readFileSync("/proc/self/maps", "utf8")
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[5])
    .find((p) => p?.endsWith("/libc.so.6"));
  assert.ok(libc, "libc.so.6 is not mapped");
  const o = loadObject("addon_attach");
  try {
    const hits = o.map("uprobe_hits");
    const link = o
      .program("uprobe_count")
      .attachUprobe(libc, { func: "gethostname", pid: process.pid });
    try {
      assert.equal(link.kind, "uprobe");
      for (let i = 0; i < 3; i++) hostname(); // libuv -> gethostname(3)
      assert.ok(readU64(hits.lookup(u32(0))) >= 3);
    } finally {
      link.destroy();
    }
    const before = readU64(hits.lookup(u32(0)));
    hostname();
    assert.equal(readU64(hits.lookup(u32(0))), before);
  } finally {
    o.close();
  }
});

test("a program outlives its closed object; closing it releases the fd", async () => {
  const o = loadObject("addon_maps");
  const p = o.program("xdp_verdict");
  o.close();
  assert.equal(p.testRun({ data: ipv4Frame(17) }).retval, XDP_DROP);
  assertNativeError(() => o.program("xdp_verdict"), "EBADF");
  const pending = p.testRunAsync({ data: ipv4Frame(17), repeat: 10 });
  p.close();
  assert.equal((await pending).retval, XDP_DROP);
  assertNativeError(() => p.testRun({ data: ipv4Frame(17) }), "EBADF");
  assertNativeError(() => p.attachUprobe("/bin/true", { offset: 0 }), "EBADF");
  assert.match(addon.libbpfVersion(), /^v?\d+\.\d+/);
});

// Loads the addon in another environment, attaches XDP and opens a ring, keeps them reachable
// and reports the link id; then `exit` runs and nothing is closed explicitly.
const teardownScript = (prelude: string, exit: string): string => `
  ${prelude}
  const a = require(workerData.addon);
  const o = a.BpfObject.open(workerData.attach);
  o.load();
  const link = o.program("xdp_pass").attachXdp(workerData.ifindex, "generic");
  const r = a.BpfObject.open(workerData.ring);
  r.load();
  const ring = new a.RingBuffer(r.map("events"), () => {});
  globalThis.keep = [o, link, r, ring];
  parentPort.postMessage(link.id());
  ${exit}
`;

const teardownData = (): Record<string, string | number> => ({
  addon: `${root}native/build/Release/moat_native.node`,
  attach: objPath("addon_attach"),
  ring: objPath("addon_ringbuf"),
  ifindex: addon.ifindex(vethA),
});

test("teardown: a worker's open links, rings and objects are released when it ends", async () => {
  const prelude = `const { parentPort, workerData } = require("node:worker_threads");`;
  const worker = new Worker(teardownScript(prelude, ""), {
    eval: true,
    workerData: teardownData(),
  });
  const [id] = (await once(worker, "message")) as [number];
  assert.match(xdpShown(), /xdpgeneric/);
  assert.ok(tryRun("bpftool", ["link", "show", "id", String(id)]).ok);
  await worker.terminate();
  assert.doesNotMatch(xdpShown(), /xdpgeneric/);
  assert.equal(tryRun("bpftool", ["link", "show", "id", String(id)]).ok, false);
});

test("teardown: process.exit with an open ring buffer and link exits cleanly", async () => {
  const prelude =
    `const workerData = ${JSON.stringify(teardownData())};` +
    `const parentPort = { postMessage: (m) => console.log(m) };`;
  const script = teardownScript(prelude, "setTimeout(() => process.exit(0), 20);");
  const { stdout, stderr } = await execFileAsync(process.execPath, ["-e", script]);
  assert.match(stdout, /^\d+\n$/);
  assert.equal(stderr, "");
  assert.doesNotMatch(xdpShown(), /xdpgeneric/);
});

test("peerCredentials reads SO_PEERCRED: the uid and pid of the process at the other end", async () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-peercred-"));
  chmodSync(dir, 0o777);
  const path = join(dir, "s.sock");
  const server = createServer();
  const accepted = new Promise<{ pid: number; uid: number; gid: number }>((resolve, reject) =>
    server.once("connection", (socket) => {
      try {
        const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
        resolve(addon.peerCredentials(fd));
      } catch (err) {
        reject(err as Error);
      } finally {
        socket.destroy();
      }
    }),
  );
  await new Promise<void>((resolve) => server.listen(path, resolve));
  chmodSync(path, 0o777);
  // a client as nobody (uid 65534): the kernel's record of it, not anything it says
  const child = spawn("setpriv", [
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "socat",
    "-u",
    `UNIX-CONNECT:${path}`,
    "OPEN:/dev/null",
  ]);
  try {
    const cred = await accepted;
    assert.deepEqual(cred, { pid: child.pid, uid: 65534, gid: 65534 });
  } finally {
    child.kill();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => addon.peerCredentials(0x7ffffff0), { code: "EBADF" });
});
