// The acceptance worker's heap is bounded: a policy whose check would need more is refused with a
// clear error, the thread that asked goes on, and the next policy gets a new worker.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  acceptPolicyOffThread,
  setAcceptWorkerHeapMb,
  stopAcceptWorker,
} from "../../src/host/accept-off-thread.ts";

const small = "version: 1\nmode: detect\n";

test("a check that needs more than the worker's heap is refused, not the process ended", async (t) => {
  t.after(async () => {
    setAcceptWorkerHeapMb(undefined);
    await stopAcceptWorker();
  });
  await stopAcceptWorker();
  setAcceptWorkerHeapMb(48);
  // an anchor: read by the yaml library, whose tree of 15k rules takes hundreds of megabytes
  let text = "version: 1\nmode: prevent\ndefaults: &d { ingress: block, egress: allow }\nrules:\n";
  for (let i = 0; i < 15_000; i++)
    text += `  - name: r${i}\n    direction: ingress\n    action: allow\n    layer4: { protocol: tcp, port: [${1 + (i % 60_000)}] }\n`;
  await assert.rejects(
    acceptPolicyOffThread(text, "/p.yaml"),
    /checking the policy needed more memory than the 48 MiB it may use/,
  );
  setAcceptWorkerHeapMb(undefined);
  const ok = await acceptPolicyOffThread(small, "/p.yaml");
  assert.equal(ok.policy?.model.mode, "detect");
});
