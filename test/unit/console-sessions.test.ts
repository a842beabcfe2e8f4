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

/** A connection as the session sees it: destroyed or not, and its close listeners. */
function connection() {
  const closers: (() => void)[] = [];
  const c = {
    destroyed: false,
    destroy() {
      c.destroyed = true;
      for (const f of closers) f();
    },
    once(_event: "close", f: () => void) {
      closers.push(f);
      return c;
    },
  };
  return c;
}

test("logout cuts the session's open connections, but not the one asking to log out", () => {
  const s = new ConsoleSessions();
  const a = s.exchange(s.mint(new Set(["read"]), "x").secret);
  assert.ok(a);
  const stream = connection();
  const logout = connection();
  s.hold(a.id, stream);
  s.hold(a.id, logout);
  s.end(a.id, logout);
  assert.equal(stream.destroyed, true, "logout cuts the live view's stream");
  assert.equal(logout.destroyed, false, "the logout request still gets its answer");
  s.close();
});

test("an open connection keeps a session from idling; its lifetime's end cuts the connection", () => {
  let now = 0;
  const s = new ConsoleSessions(() => now);
  const b = s.exchange(s.mint(new Set(["read"]), "x").secret);
  assert.ok(b);
  const stream = connection();
  s.hold(b.id, stream);
  // nothing but the open stream for longer than the idle limit: still in use
  now = CONSOLE_LIFETIMES.idleMs * 2;
  s.expire();
  assert.equal(stream.destroyed, false);
  assert.ok(s.lookup(b.id));
  // the lifetime is over: the stream is cut even though nobody asked anything
  now = CONSOLE_LIFETIMES.sessionMs;
  s.expire();
  assert.equal(stream.destroyed, true, "the session's lifetime cuts its stream");
  assert.equal(s.lookup(b.id), null);
  s.close();
});
