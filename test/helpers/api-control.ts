// An ApiControl for tests of the API alone: the snapshot and live subscribers go to a real event
// pipeline, every policy call throws unless the test gives it, and nothing is logged or audited.
import type { ApiControl } from "../../src/api/control.ts";
import type { EventPipeline } from "../../src/observe/pipeline.ts";
import { fakeSnapshot } from "./events.ts";

export function testControl(pipeline: EventPipeline, parts: Partial<ApiControl> = {}): ApiControl {
  const refuse = () => {
    throw new Error("not used in this test");
  };
  return {
    original: () => null,
    snapshot: () => fakeSnapshot(pipeline),
    policy: refuse,
    validate: refuse,
    apply: refuse,
    confirm: refuse,
    setMode: refuse,
    replay: refuse,
    sshKeys: refuse,
    queryHistory: () => null,
    addSink: (sink, options) => pipeline.add(sink, options),
    removeSink: (sink) => pipeline.remove(sink),
    log: () => {},
    audit: () => {},
    ...parts,
  };
}
