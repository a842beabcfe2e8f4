// Console logins and sessions: a login secret works once and expires; a session expires after
// its lifetime or when idle; the CSRF check compares exactly.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConsoleSessions, CONSOLE_LIFETIMES, csrfMatches } from "../../src/api/console-sessions.ts";

test("a login secret works once, and not after its lifetime", () => {
  let now = 1_000_000;
  const s = new ConsoleSessions(() => now);
  const a = s.mint(new Set(["read"]), "unix uid 0 pid 1");
  const session = s.exchange(a.secret);
  assert.deepEqual([...(session?.scopes ?? [])], ["read"]);
  assert.equal(s.exchange(a.secret), null);
  const b = s.mint(new Set(["read"]), "x");
  now += CONSOLE_LIFETIMES.loginMs;
  assert.equal(s.exchange(b.secret), null);
});

test("a session ends when idle too long or past its lifetime, whichever comes first", () => {
  let now = 0;
  const s = new ConsoleSessions(() => now);
  const idle = s.exchange(s.mint(new Set(["read"]), "x").secret);
  const busy = s.exchange(s.mint(new Set(["read"]), "x").secret);
  assert.ok(idle && busy);
  for (let t = 0; t < CONSOLE_LIFETIMES.sessionMs; t += CONSOLE_LIFETIMES.idleMs / 2) {
    now = t;
    assert.ok(s.lookup(busy.id), `in use at ${t}`);
  }
  assert.equal(s.lookup(idle.id), null);
  now = CONSOLE_LIFETIMES.sessionMs;
  assert.equal(s.lookup(busy.id), null);
});

test("the CSRF header must be the session's token exactly", () => {
  const s = new ConsoleSessions();
  const session = s.exchange(s.mint(new Set(["read"]), "x").secret);
  assert.ok(session);
  assert.equal(csrfMatches(session, session.csrf), true);
  assert.equal(csrfMatches(session, undefined), false);
  assert.equal(csrfMatches(session, session.csrf.slice(1)), false);
  assert.equal(csrfMatches(session, [session.csrf]), false);
});
