// Name patterns as every name-matching field reads them: exact, `*.` one label, `**.` any depth.
import { test } from "node:test";
import assert from "node:assert/strict";
import { hostMatch } from "../../src/policy/glob.ts";
import { parseHostname } from "../../src/config/address-entry.ts";

test("`*.` is exactly one label below, `**.` any depth; neither is the apex", () => {
  const cases: [string, string, boolean][] = [
    ["example.org", "example.org", true],
    ["example.org", "EXAMPLE.org.", true],
    ["example.org", "a.example.org", false],
    ["*.example.org", "a.example.org", true],
    ["*.example.org", "a.b.example.org", false],
    ["*.example.org", "example.org", false],
    ["*.example.org", "aexample.org", false],
    ["**.example.org", "a.example.org", true],
    ["**.example.org", "a.b.example.org", true],
    ["**.example.org", "example.org", false],
    ["**.example.org", "badexample.org", false],
  ];
  for (const [pattern, name, expected] of cases)
    assert.equal(hostMatch(pattern, name), expected, `${pattern} vs ${name}`);
});

test("hostname entries keep their wildcard depth", () => {
  const parsed = (text: string) => {
    const p = parseHostname(text);
    assert.ok(p.ok, text);
    return p.value;
  };
  assert.deepEqual(parsed("**.Example.org."), { name: "example.org", wildcard: "any" });
  assert.deepEqual(parsed("*.example.org"), { name: "example.org", wildcard: "one" });
  assert.deepEqual(parsed("example.org"), { name: "example.org", wildcard: null });
});

test("names with non-ASCII letters are kept in their A-label (punycode) form, as DNS carries them", async () => {
  const { domainToASCII } = await import("node:url");
  const parsed = (text: string) => {
    const p = parseHostname(text);
    assert.ok(p.ok, text);
    return p.value;
  };
  for (const name of ["bücher.example", "München.de", "例え.jp", "xn--bcher-kva.example", "ñ.ñ.es"])
    assert.equal(parsed(name).name, domainToASCII(name), name);
  assert.deepEqual(parsed("*.Bücher.example"), { name: "xn--bcher-kva.example", wildcard: "one" });
  assert.deepEqual(parsed("**.bücher.example"), { name: "xn--bcher-kva.example", wildcard: "any" });
  // the same name, written composed or decomposed (u + combining diaeresis), is one name
  assert.equal(parsed("bu\u0308cher.example").name, "xn--bcher-kva.example");
  const bad = parseHostname("bü cher.example");
  assert.ok(!bad.ok);
  assert.equal(bad.error, "'bü cher.example' is not a valid hostname");
});

test("the A-label of a name is what url.domainToASCII gives, for letters IDNA keeps as they are", async () => {
  const fc = (await import("fast-check")).default;
  const { domainToASCII } = await import("node:url");
  const { toAsciiName } = await import("../../src/config/punycode.ts");
  // lower-case letters with no IDNA mapping: Latin-1, Cyrillic, Greek, kana, CJK; and ASCII
  const letters = [
    ..."abcxyz019-àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿабвгдежзийклмнопрстуфхцчшщыэюяαβγδεζηθικλμνξοπρστυφχψωあいうえおかきくけこ日本語中文字",
  ];
  const label = fc
    .array(fc.constantFrom(...letters), { minLength: 1, maxLength: 20 })
    .map((cs) => cs.join(""))
    .filter((l) => !l.startsWith("-") && !l.endsWith("-") && l.slice(2, 4) !== "--");
  fc.assert(
    fc.property(fc.array(label, { minLength: 1, maxLength: 3 }), (labels) => {
      const name = `${labels.join(".")}.example`;
      assert.equal(toAsciiName(name), domainToASCII(name), name);
    }),
    { numRuns: 500 },
  );
});
