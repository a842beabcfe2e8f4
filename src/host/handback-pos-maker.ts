// Makers (handback-columns.ts) for the shapes that hold a `pos`: a big policy's rules, their
// layer3, address lists, entries, layer4 and ports. Their positions stay numbers of the table
// (positions.ts: PositionTable.keepPos): the object keeps the number under its table's key, and
// `pos` is a getter put among its keys where `pos` was, so the keys keep their order. An object
// literal cannot hold such a getter without a new function each time it is evaluated, so the
// getter is defined on the object the literal made. The shapes are made three ways:
//
// - `pos` the last key (a rule, an address list, a port): the literal of the keys before it and
//   the number, then the getter;
// - no more than 4 keys (a layer3, a layer4): `{}` then a key at a time (`{}` has room for 4
//   properties in itself);
// - else (an address entry): a constructor that sets the keys in order (its objects are plain,
//   their prototype Object.prototype, and the engine sizes them for the keys they get).
//
// A literal's objects are allocated where they will stay once the engine sees that they do (a
// constructor's are not: they are copied out of the young generation), so the literal goes first.

/** Makes an object of one shape, its values read from their columns in the order of its keys. */
export type Maker<Col> = (
  read: (col: Col) => unknown,
  fields: Col[],
  /** for a `pos` */
  kit: PosKit<Col>,
) => Record<string, unknown>;

/** What a maker is given to put `pos` on its object. */
export interface PosKit<Col> {
  /**
   * The number of the position a "pos" column holds next, read, if it is kept as its number; else
   * undefined, and nothing is read.
   */
  code(col: Col): number | undefined;
  /** The key an object keeps its position's number under (PositionTable.posKey). */
  key(): symbol;
  /** Gives `obj`, which holds its position's number under key(), its `pos` getter. */
  keep<T extends object>(obj: T): T;
  /** Puts `pos` on `obj` from its column: kept as the number when it can be. */
  put(obj: Record<string, unknown>, col: Col): void;
}

/** The most keys `{}` keeps in the object itself. */
const EMPTY_LITERAL_ROOM = 4;

/** A maker for `keys`, one of them "pos"; undefined if code from strings is not allowed. */
export function posMaker<Col>(keys: string[]): Maker<Col> | undefined {
  const at = keys.indexOf("pos");
  const key = (i: number) => JSON.stringify(keys[i]);
  const value = (i: number) => `read(fields[${i}])`;
  let body: string;
  if (at === keys.length - 1) {
    const before = keys.slice(0, at).map((_, i) => `${key(i)}: ${value(i)}, `);
    body = [
      `const p = kit.code(fields[${at}]);`,
      `if (p === undefined) return { ${before.join("")}"pos": ${value(at)} };`,
      `return kit.keep({ ${before.join("")}[kit.key()]: p });`,
    ].join("\n");
  } else if (keys.length <= EMPTY_LITERAL_ROOM) {
    // (`pos` takes no room; the number does)
    const sets = keys.map((_, i) =>
      i === at ? `kit.put(o, fields[${i}]);` : `o[${key(i)}] = ${value(i)};`,
    );
    body = ["const o = {};", ...sets, "return o;"].join("\n");
  } else return constructorMaker(keys);
  try {
    return new Function("read", "fields", "kit", `"use strict";\n${body}`) as Maker<Col>;
  } catch {
    return undefined;
  }
}

function constructorMaker<Col>(keys: string[]): Maker<Col> | undefined {
  const sets = keys.map((k, i) =>
    k === "pos"
      ? `kit.put(this, fields[${i}]);`
      : `this[${JSON.stringify(k)}] = read(fields[${i}]);`,
  );
  try {
    const Make = new Function("read", "fields", "kit", `"use strict";\n${sets.join("\n")}`) as {
      prototype: object;
      new (...args: Parameters<Maker<Col>>): Record<string, unknown>;
    };
    Make.prototype = Object.prototype;
    return (read, fields, kit) => new Make(read, fields, kit);
  } catch {
    return undefined;
  }
}
