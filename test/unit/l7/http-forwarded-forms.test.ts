// What the HTTP relay forwards, against plain models of it: the end-to-end headers (hop-by-hop
// ones and those Connection names dropped) and the path with its dot segments removed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { endToEnd } from "../../../src/l7/http/headers.ts";
import { requestTarget } from "../../../src/l7/http/request-facts.ts";

const HOP = ["connection", "keep-alive", "proxy-connection", "te", "transfer-encoding"];
const HOP_TOO = ["upgrade", "http2-settings", "expect", "trailer"];

type Headers = Record<string, string | string[] | number | undefined>;

/** The headers a relay forwards, as RFC 9110 7.6.1 words it. */
function modelEndToEnd(headers: Headers, keep: string[] = []): Record<string, string | string[]> {
  const named = String(headers.connection ?? "")
    .split(",")
    .map((t) => t.trim().toLowerCase());
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (value === undefined || lower.startsWith(":")) continue;
    const hop = [...HOP, ...HOP_TOO].includes(lower) || (lower !== "" && named.includes(lower));
    if (hop && !keep.includes(lower)) continue;
    out[name] = typeof value === "number" ? String(value) : value;
  }
  return out;
}

test("end-to-end headers: hop-by-hop ones and those Connection names are dropped, in order", () => {
  const cases: [Headers, string[]?][] = [
    [{ host: "a", accept: "*/*", "x-n": 3 }],
    [{ host: "a", connection: "close", "keep-alive": "timeout=5", te: "trailers" }],
    [{ host: "a", connection: "X-Secret, , Keep-Alive", "x-secret": "s", "x-other": "o" }],
    [{ host: "a", connection: ["x-a", "x-b"], "x-a": "1", "x-b": "2", "x-c": "3" }],
    [{ ":path": "/", host: "a", "x-u": undefined, cookie: ["a=1", "b=2"] }],
    [{ host: "a", upgrade: "websocket", connection: "upgrade" }, ["upgrade", "connection"]],
    [{ host: "a", connection: "" }],
  ];
  for (const [headers, keep] of cases) {
    const got = endToEnd(headers, keep);
    const want = modelEndToEnd(headers, keep);
    assert.deepEqual(got, want, JSON.stringify(headers));
    assert.deepEqual(Object.keys(got), Object.keys(want), "the order of the headers is kept");
  }
});

/** RFC 3986 5.2.4 over a path that starts with "/", a segment at a time. */
function modelRemoveDots(path: string): string {
  const segments = path.split("/").slice(1);
  const out: string[] = [];
  segments.forEach((s, i) => {
    const last = i === segments.length - 1;
    if (s === "..") {
      out.pop();
      if (last) out.push("");
    } else if (s === ".") {
      if (last) out.push("");
    } else out.push(s);
  });
  return `/${out.join("/")}`;
}

test("a path's dot segments are removed as RFC 3986 says, with or without any", () => {
  const pieces = ["/", ".", "..", "a", ".b", "c.", "//", "/./", "/../"];
  let seed = 7;
  const pick = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let i = 0; i < 5000; i++) {
    let path = "/";
    for (let n = pick(8); n > 0; n--) path += pieces[pick(pieces.length)];
    assert.equal(requestTarget(path).path, modelRemoveDots(path), path);
  }
  assert.equal(requestTarget("/small?x=/./").target, "/small?x=/./");
  assert.equal(requestTarget("/a/./b/../c").path, "/a/c");
});
