// How single entries read: addresses, CIDRs, ranges, hostnames, ports, durations.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAddressEntry } from "../../src/config/address-entry.ts";
import { formatDuration, parseDuration } from "../../src/config/duration.ts";
import { formatIp, parseIp, unmapIpv4 } from "../../src/config/ip.ts";
import { parsePortEntry } from "../../src/config/port-entry.ts";

test("IPv4 and IPv6 addresses parse to their integer value and print back", () => {
  const cases: [string, 4 | 6, bigint, string][] = [
    ["10.0.0.1", 4, 0x0a000001n, "10.0.0.1"],
    ["255.255.255.255", 4, 0xffffffffn, "255.255.255.255"],
    ["::", 6, 0n, "::"],
    ["::1", 6, 1n, "::1"],
    ["2001:db8::1", 6, 0x20010db8000000000000000000000001n, "2001:db8::1"],
    ["fd00::", 6, 0xfd000000000000000000000000000000n, "fd00::"],
    ["::ffff:10.0.0.1", 6, 0xffff0a000001n, "::ffff:a00:1"],
    ["1:2:3:4:5:6:7:8", 6, 0x00010002000300040005000600070008n, "1:2:3:4:5:6:7:8"],
  ];
  for (const [text, family, value, printed] of cases) {
    const parsed = parseIp(text);
    assert.deepEqual(parsed, { ok: true, value: { family, value } }, text);
    assert.equal(formatIp({ family, value }), printed);
  }
});

test("bad addresses say what is wrong", () => {
  const cases: [string, string][] = [
    ["10.0.0.300", "'10.0.0.300' is not an IPv4 address (300 > 255)"],
    ["10.0.0", "'10.0.0' is not an IPv4 address (expected 4 parts a.b.c.d)"],
    ["10.0.0.01", "'10.0.0.01' is not an IPv4 address (leading zero in '01' is ambiguous)"],
    ["1::2::3", "'1::2::3' is not an IPv6 address ('::' appears more than once)"],
    ["fe80::1%eth0", "'fe80::1%eth0' is not an IPv6 address (zones like %eth0 are not allowed)"],
    ["1:2:3:4:5:6:7:8:9", "'1:2:3:4:5:6:7:8:9' is not an IPv6 address (expected 8 groups)"],
    ["12345::", "'12345::' is not an IPv6 address (bad group '12345')"],
  ];
  for (const [text, error] of cases) assert.deepEqual(parseIp(text), { ok: false, error }, text);
});

test("an IPv4-mapped IPv6 address is judged as the IPv4 address it carries", () => {
  const mapped = parseIp("::ffff:192.0.2.1");
  assert.ok(mapped.ok);
  assert.deepEqual(unmapIpv4(mapped.value), { family: 4, value: 0xc0000201n });
});

test("address entries: CIDR, range, negation, set reference, hostname", () => {
  assert.deepEqual(parseAddressEntry("10.0.0.0/8"), {
    ok: true,
    value: {
      negate: false,
      target: {
        kind: "interval",
        family: 4,
        start: 0x0a000000n,
        end: 0x0affffffn,
        hostBitsSet: false,
      },
    },
  });
  assert.deepEqual(parseAddressEntry("!192.168.1.10-192.168.1.20"), {
    ok: true,
    value: {
      negate: true,
      target: { kind: "interval", family: 4, start: 0xc0a8010an, end: 0xc0a80114n },
    },
  });
  assert.deepEqual(parseAddressEntry("fd00::/8"), {
    ok: true,
    value: {
      negate: false,
      target: {
        kind: "interval",
        family: 6,
        start: 0xfd000000000000000000000000000000n,
        end: 0xfdffffffffffffffffffffffffffffffn,
        hostBitsSet: false,
      },
    },
  });
  assert.deepEqual(parseAddressEntry("set:corp"), {
    ok: true,
    value: { negate: false, target: { kind: "set", set: "corp" } },
  });
  assert.deepEqual(parseAddressEntry("*.Example.org"), {
    ok: true,
    value: { negate: false, target: { kind: "hostname", name: "example.org", wildcard: "one" } },
  });
  assert.deepEqual(parseAddressEntry("10.1.2.3/8"), {
    ok: true,
    value: {
      negate: false,
      target: {
        kind: "interval",
        family: 4,
        start: 0x0a000000n,
        end: 0x0affffffn,
        hostBitsSet: true,
      },
    },
  });
});

test("bad address entries say what they looked like", () => {
  const cases: [string, string][] = [
    ["10.0.0.0/33", "'10.0.0.0/33' has a bad prefix length '/33' (0-32 for IPv4)"],
    ["fd00::/129", "'fd00::/129' has a bad prefix length '/129' (0-128 for IPv6)"],
    ["10.0.0.9-10.0.0.1", "'10.0.0.9-10.0.0.1' is an empty range (start > end)"],
    ["10.0.0.1-::1", "'10.0.0.1-::1' mixes IPv4 and IPv6"],
    ["!", "'!' is empty after '!'"],
    ["!!10.0.0.1", "'!!10.0.0.1' has more than one '!'"],
    ["bad..host", "'bad..host' is not an IP address, CIDR, \"a-b\" range, set:NAME or hostname"],
    [
      "host_with space",
      "'host_with space' is not an IP address, CIDR, \"a-b\" range, set:NAME or hostname",
    ],
  ];
  for (const [text, error] of cases)
    assert.deepEqual(parseAddressEntry(text), { ok: false, error }, text);
});

test("port entries: single, range, set reference; out of range and empty ranges are errors", () => {
  assert.deepEqual(parsePortEntry(22), { ok: true, value: { kind: "range", lo: 22, hi: 22 } });
  assert.deepEqual(parsePortEntry("0"), { ok: true, value: { kind: "range", lo: 0, hi: 0 } });
  assert.deepEqual(parsePortEntry("8000-8999"), {
    ok: true,
    value: { kind: "range", lo: 8000, hi: 8999 },
  });
  assert.deepEqual(parsePortEntry("set:web"), { ok: true, value: { kind: "set", set: "web" } });
  assert.deepEqual(parsePortEntry(65536), {
    ok: false,
    error: "port 65536 is out of range 0-65535",
  });
  assert.deepEqual(parsePortEntry("1-70000"), {
    ok: false,
    error: "port 70000 is out of range 0-65535",
  });
  assert.deepEqual(parsePortEntry("90-80"), {
    ok: false,
    error: "'90-80' is an empty range (90 > 80)",
  });
  assert.deepEqual(parsePortEntry("!22"), {
    ok: false,
    error: "'!22': ports cannot be negated; list the ranges to match instead",
  });
  assert.deepEqual(parsePortEntry("ssh"), {
    ok: false,
    error: "'ssh' is not a port, \"a-b\" port range or set:NAME",
  });
});

test("durations: 8h, 30m, 90s, 1d, 1h30m, or whole seconds", () => {
  const cases: [string | number, number][] = [
    ["8h", 28800],
    ["30m", 1800],
    ["90s", 90],
    ["1d", 86400],
    ["1h30m", 5400],
    [45, 45],
  ];
  for (const [text, seconds] of cases)
    assert.deepEqual(parseDuration(text), { ok: true, value: seconds });
  assert.deepEqual(parseDuration("8 hours"), {
    ok: false,
    error: "'8 hours' is not a duration (write e.g. 90s, 30m, 8h, 1d or 1h30m)",
  });
  assert.deepEqual(parseDuration("0s"), {
    ok: false,
    error: "'0s' is zero; a duration must be positive",
  });
  assert.equal(formatDuration(5400), "1h30m");
});
