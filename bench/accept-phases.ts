// Where accepting a big policy file goes (B5 from the file, docs/performance.md): the phases the
// worker thread runs (read the YAML, the schema, normalize, compile), and the hand-back of the
// result to the daemon's thread (src/host/accept-handback.ts: the positions packed as numbers there,
// then what postMessage does: serialize there, deserialize here, and the positions put back here),
// each as this thread's CPU time, so figures taken on a busy machine still compare. postMessage
// moves the typed arrays the pack lists instead of copying them as serialize does here (movedMiB of
// handBackMiB). unpackLongestStep: the unpack's longest stretch between two turns of the daemon's
// event loop. No BPF: the apply is bench/reload.ts's.
//
//   node --expose-gc bench/accept-phases.ts [RULES] [REPEATS]     (default 100000 rules, 3 runs)
//   READER=fast node ...    (the file read with the node table, positions' offsets noted meanwhile)
import { deserialize, serialize } from "node:v8";
import { checkSchema } from "../src/config/schema-check.ts";
import { CheckContext } from "../src/config/check-context.ts";
import { normalizePolicy } from "../src/config/normalize.ts";
import { readFast } from "../src/config/fast-source.ts";
import { readLean } from "../src/config/lean-source.ts";
import { textOnlyHost } from "../src/config/parse.ts";
import { compilePolicy } from "../src/policy/compile/policy-image.ts";
import {
  packAcceptance,
  unpackAcceptance,
  type PackedAcceptance,
} from "../src/host/accept-handback.ts";
import { mixedPolicy } from "./compile.ts";

const rules = Number(process.argv[2] ?? 100_000);
const repeats = Number(process.argv[3] ?? 3);
const gc = (globalThis as { gc?: () => void }).gc;
const cpuMs = (): number => {
  const c = process.threadCpuUsage();
  return (c.user + c.system) / 1000;
};

const text = mixedPolicy(rules);
const rows: Record<string, number | string>[] = [];
for (let run = 1; run <= repeats; run++) {
  gc?.();
  const row: Record<string, number | string> = { run };
  let at = cpuMs();
  const lap = (phase: string) => {
    const now = cpuMs();
    row[phase] = Math.round(now - at);
    at = now;
  };
  // READER=fast: the reader with the node table (positions' offsets noted while reading)
  const source =
    process.env.READER === "fast" ? readFast("bench.yaml", text) : readLean("bench.yaml", text);
  if (!source) throw new Error("the reader gave up on the bench policy");
  lap("yaml");
  const schema = checkSchema(source);
  lap("schema");
  const ctx = new CheckContext(source, schema.problems, textOnlyHost);
  const model = normalizePolicy(ctx, source.data as Parameters<typeof normalizePolicy>[1]);
  if (!model) throw new Error("the bench policy did not check");
  lap("normalize");
  const image = compilePolicy(model, null);
  lap("compile");
  const { packed, transfer } = packAcceptance({ diagnostics: [], policy: { model, image } });
  lap("pack");
  // what postMessage moves rather than copies (serialize below copies it too)
  const moved = transfer.reduce((n, b) => n + b.byteLength, 0);
  const bytes = serialize(packed);
  lap("serialize");
  const back = deserialize(bytes) as PackedAcceptance;
  lap("deserialize");
  // the daemon's thread unpacks a part of a long list a turn: its longest turn, with the message's
  // deserialize (a turn of its own) the longest the thread is held
  let step = cpuMs();
  let longestStep = 0;
  const unpacked = (
    await unpackAcceptance(back, text, () => {
      const now = cpuMs();
      longestStep = Math.max(longestStep, now - step);
      step = now;
      return Promise.resolve();
    })
  ).acceptance;
  longestStep = Math.max(longestStep, cpuMs() - step);
  lap("unpack");
  row.unpackLongestStep = Math.round(longestStep);
  // what a message or `moat explain` then costs once: a position's line (the lean reader's
  // table reads the file again for every offset)
  void unpacked.policy?.model.rules[0]?.pos.line;
  lap("firstLine");
  row.handBackMiB = Math.round(bytes.length / 2 ** 20);
  row.movedMiB = Math.round(moved / 2 ** 20);
  row.rssMiB = Math.round(process.memoryUsage().rss / 2 ** 20);
  rows.push(row);
}
console.log(`${rules} rules (${(text.length / 1e6).toFixed(1)} MB), thread CPU ms per phase:`);
console.table(rows);
