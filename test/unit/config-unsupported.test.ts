// What the datapath cannot enforce yet is refused at daemon load, naming the field and its position.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  assertSupported,
  DATAPATH_FEATURES,
  formatDiagnostic,
  PolicyError,
  unsupportedFeatures,
} from "../../src/config/index.ts";
import { loadPolicyFile } from "../../src/host/index.ts";

const FULL = "test/fixtures/policies/full.yaml";

test("every feature the datapath lacks is named at its position", () => {
  const model = loadPolicyFile(FULL);
  assert.deepEqual(unsupportedFeatures(model, DATAPATH_FEATURES).map(formatDiagnostic), [
    `${FULL}:47:7 rules[2].layer7: 'layer7' is not supported yet by this version of moat (moat has no layer 7 proxy)`,
    `${FULL}:67:16 rules[3].layer3.remote[0]: '*.tracker.example' (a hostname) is not supported yet by this version of moat (moat does not learn addresses from DNS answers)`,
  ]);
});

test("the caller says what is supported; a supported feature is not reported", () => {
  const model = loadPolicyFile(FULL);
  const more = new Set([
    ...DATAPATH_FEATURES,
    "process",
    "interface",
    "attach.cgroup",
    "layer4.max_duration",
  ]);
  assert.deepEqual(
    unsupportedFeatures(model, more).map((d) => d.path),
    ["rules[2].layer7", "rules[3].layer3.remote[0]"],
  );
  assert.deepEqual(
    unsupportedFeatures(model, new Set(["layer3"]))
      .map((d) => d.path)
      .slice(0, 4),
    ["defaults", "attach.cgroup", "sets.corp", "sets.blocklist"],
  );
});

test("hostnames inside a set are reported where the set lists them", () => {
  const model = loadPolicyFile("test/fixtures/policies/hostname-set.yaml");
  assert.deepEqual(unsupportedFeatures(model, DATAPATH_FEATURES).map(formatDiagnostic), [
    "test/fixtures/policies/hostname-set.yaml:4:24 sets.apis[1]: 'api.example.com' (a hostname) is not supported yet by this version of moat (moat does not learn addresses from DNS answers)",
  ]);
});

test("assertSupported throws a PolicyError listing them; examples pass it", () => {
  assert.throws(
    () => assertSupported(loadPolicyFile(FULL), DATAPATH_FEATURES),
    (err: unknown) => err instanceof PolicyError && err.diagnostics.length === 2,
  );
  for (const name of ["default", "server", "workstation"])
    assertSupported(loadPolicyFile(`examples/${name}.yaml`), DATAPATH_FEATURES);
});
