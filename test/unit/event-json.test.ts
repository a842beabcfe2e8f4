// An event's shared JSON: the same text JSON.stringify gives, made once, and invisible on the
// event (its fields, its JSON, a structured clone and a deep comparison are unchanged).
import { test } from "node:test";
import assert from "node:assert/strict";
import { eventJson } from "../../src/datapath/event-json.ts";
import { fakeEvent } from "../helpers/events.ts";

test("eventJson is JSON.stringify's text, kept on the event without changing it", () => {
  const event = fakeEvent({ remote: { ip: "192.0.2.1", port: 443, names: ["a.example"] } });
  const copy = structuredClone(event);
  const text = eventJson(event);
  assert.equal(text, JSON.stringify(copy));
  assert.equal(eventJson(event), text);
  assert.deepStrictEqual(Object.keys(event), Object.keys(copy));
  assert.deepStrictEqual(event, copy);
  assert.equal(JSON.stringify(event), text);
  assert.deepStrictEqual(structuredClone(event), copy);
});

test("a bigint (none today) is written as a number, or past 2^53 as a string", () => {
  const event = fakeEvent();
  Object.assign(event, { extra: { small: 5n, big: 1n << 60n } });
  assert.match(eventJson(event), /"extra":\{"small":5,"big":"1152921504606846976"\}/);
});
