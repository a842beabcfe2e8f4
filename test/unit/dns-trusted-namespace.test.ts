// Whose answers bind names, by the network namespace a query came through: moat's own trusts
// loopback stubs and the listed resolvers; a container's (owned by moat's user namespace) the
// listed resolvers and Docker's 127.0.0.11; one another user namespace owns trusts no server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { answerBinds, trustedResolvers, type QueryNamespace } from "../../src/dns/trusted.ts";

test("an answer binds by server and namespace; in a user-owned namespace none does", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-dns-ns-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const conf = join(dir, "resolv.conf");
  writeFileSync(conf, "nameserver 127.0.0.53\nnameserver 10.0.0.53\n");
  const trusted = trustedResolvers(["192.0.2.53", "::1"], conf);
  const binds = (server: string): Record<QueryNamespace, boolean> => ({
    moat: answerBinds(trusted, server, "moat"),
    container: answerBinds(trusted, server, "container"),
    "user-owned": answerBinds(trusted, server, "user-owned"),
  });
  const listed = { moat: true, container: true, "user-owned": false };
  const loopback = { moat: true, container: false, "user-owned": false };
  const none = { moat: false, container: false, "user-owned": false };
  assert.deepEqual(binds("10.0.0.53"), listed, "resolv.conf's nameserver");
  assert.deepEqual(binds("192.0.2.53"), listed, "a dns.resolvers entry");
  assert.deepEqual(binds("::ffff:192.0.2.53"), listed, "a dns.resolvers entry, IPv4-mapped");
  assert.deepEqual(binds("127.0.0.11"), listed, "Docker's embedded resolver");
  assert.deepEqual(binds("127.0.0.53"), loopback, "a listed loopback stub");
  assert.deepEqual(binds("::1"), loopback, "a listed loopback stub (IPv6)");
  assert.deepEqual(binds("127.0.0.2"), loopback, "any loopback address");
  assert.deepEqual(binds("198.51.100.53"), none, "a server nobody listed");
  assert.deepEqual(binds("not an ip"), none);
});
