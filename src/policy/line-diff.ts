// A unified diff of two texts by lines (what `moat policy apply --dry-run` and `moat suggest`
// show): the longest common subsequence of the lines between a common head and tail, hunks
// with 3 lines of context.

export type DiffOp = { kind: " " | "-" | "+"; line: string };

/** Lines of the edit from `a` to `b`, in order. */
export function lineEdits(a: readonly string[], b: readonly string[]): DiffOp[] {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (
    tail < a.length - head &&
    tail < b.length - head &&
    a[a.length - 1 - tail] === b[b.length - 1 - tail]
  )
    tail++;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  const ops: DiffOp[] = a.slice(0, head).map((line) => ({ kind: " ", line }));
  // one at a time: a spread of a big file's middle would pass more arguments than the stack holds
  for (const op of middle(x, y)) ops.push(op);
  for (const line of a.slice(a.length - tail)) ops.push({ kind: " ", line });
  return ops;
}

/** The changed middle: LCS by dynamic programming, or all removed then all added when huge. */
function middle(x: readonly string[], y: readonly string[]): DiffOp[] {
  if (x.length * y.length > 4_000_000)
    return [
      ...x.map((line) => ({ kind: "-" as const, line })),
      ...y.map((line) => ({ kind: "+" as const, line })),
    ];
  const w = y.length + 1;
  const lcs = new Uint32Array((x.length + 1) * w);
  for (let i = x.length - 1; i >= 0; i--)
    for (let j = y.length - 1; j >= 0; j--)
      lcs[i * w + j] =
        x[i] === y[j]
          ? (lcs[(i + 1) * w + j + 1] ?? 0) + 1
          : Math.max(lcs[(i + 1) * w + j] ?? 0, lcs[i * w + j + 1] ?? 0);
  const ops: DiffOp[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && x[i] === y[j]) {
      ops.push({ kind: " ", line: x[i++] ?? "" });
      j++;
    } else if (
      i < x.length &&
      (j >= y.length || (lcs[(i + 1) * w + j] ?? 0) >= (lcs[i * w + j + 1] ?? 0))
    )
      ops.push({ kind: "-", line: x[i++] ?? "" });
    else ops.push({ kind: "+", line: y[j++] ?? "" });
  }
  return ops;
}

/** `--- a`/`+++ b` and @@ hunks; no lines when the texts are the same. */
export function unifiedDiff(aText: string, bText: string, aName: string, bName: string): string[] {
  const split = (t: string) => (t === "" ? [] : t.replace(/\n$/, "").split("\n"));
  const ops = lineEdits(split(aText), split(bText));
  if (!ops.some((o) => o.kind !== " ")) return [];
  const out = [`--- ${aName}`, `+++ ${bName}`];
  const CONTEXT = 3;
  // where each op sits in a and b (1-based line numbers)
  const at: { a: number; b: number }[] = [];
  let ai = 1;
  let bi = 1;
  for (const o of ops) {
    at.push({ a: ai, b: bi });
    if (o.kind !== "+") ai++;
    if (o.kind !== "-") bi++;
  }
  let k = 0;
  while (k < ops.length) {
    while (k < ops.length && ops[k]?.kind === " ") k++;
    if (k >= ops.length) break;
    const start = Math.max(0, k - CONTEXT);
    let end = k;
    // extend while the next change is within 2*CONTEXT unchanged lines
    for (;;) {
      while (end < ops.length && ops[end]?.kind !== " ") end++;
      let gap = end;
      while (gap < ops.length && ops[gap]?.kind === " ") gap++;
      if (gap < ops.length && gap - end <= 2 * CONTEXT) end = gap;
      else break;
    }
    const stop = Math.min(ops.length, end + CONTEXT);
    const hunk = ops.slice(start, stop);
    const first = at[start] ?? { a: 1, b: 1 };
    const aCount = hunk.filter((o) => o.kind !== "+").length;
    const bCount = hunk.filter((o) => o.kind !== "-").length;
    const range = (from: number, n: number) => (n === 0 ? `${from - 1},0` : `${from},${n}`);
    out.push(`@@ -${range(first.a, aCount)} +${range(first.b, bCount)} @@`);
    for (const o of hunk) out.push(`${o.kind}${o.line}`);
    k = stop;
  }
  return out;
}
