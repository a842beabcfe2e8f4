// Where each character of an inline signature written as a quoted YAML string is in the policy
// file (docs/policy.md, "ids"): a signature's problems are found at offsets of its unescaped text
// and reported at the column they are written at (a \" or '' takes two columns, a \x41 four).

/** The characters of YAML's one-character escapes in double quotes, by the letter after '\'. */
const SINGLE_ESCAPES: Readonly<Record<string, string>> = {
  "0": "\u0000",
  a: "\u0007",
  b: "\b",
  t: "\t",
  "\t": "\t",
  n: "\n",
  v: "\v",
  f: "\f",
  r: "\r",
  e: "\u001b",
  " ": " ",
  '"': '"',
  "/": "/",
  "\\": "\\",
  N: "\u0085",
  _: "\u00a0",
  L: "\u2028",
  P: "\u2029",
};
const HEX_ESCAPES: Readonly<Record<string, number>> = { x: 2, u: 4, U: 8 };

/**
 * The column (1-based) of each character of `value` and of its end, as written in the quoted
 * scalar that opens at column `col` of `line`; undefined where that scalar is not `value` on this
 * line (the file changed since it was read, or the string goes on over lines).
 */
export function quotedColumns(line: string, col: number, value: string): number[] | undefined {
  const quote = line[col - 1];
  if (quote !== '"' && quote !== "'") return undefined;
  const cols: number[] = [];
  let decoded = "";
  let i = col;
  const take = (chars: string, at: number) => {
    for (let k = 0; k < chars.length; k++) cols.push(at + 1);
    decoded += chars;
  };
  while (i < line.length) {
    const c = line[i]!;
    if (c === quote) {
      if (quote === "'" && line[i + 1] === "'") {
        take("'", i);
        i += 2;
        continue;
      }
      cols.push(i + 1);
      return decoded === value ? cols : undefined;
    }
    if (quote === '"' && c === "\\") {
      const next = line[i + 1] ?? "";
      const width = HEX_ESCAPES[next];
      if (width !== undefined) {
        const hex = line.slice(i + 2, i + 2 + width);
        if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== width) return undefined;
        take(String.fromCodePoint(parseInt(hex, 16)), i);
        i += 2 + width;
        continue;
      }
      const one = SINGLE_ESCAPES[next];
      if (one === undefined) return undefined;
      take(one, i);
      i += 2;
      continue;
    }
    take(c, i);
    i++;
  }
  return undefined;
}
