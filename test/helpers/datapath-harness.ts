// Runs moat's datapath inside a network namespace (started with `nsenter --net=...`) with a
// policy file read by the real loader and compiler, and obeys line commands on stdin, answering
// on stdout: for tests that drive traffic from another namespace.
//   argv: INTERFACE POLICY_FILE [INGRESS_HOOK: xdp (default) | tc]
//   policy FILE (apply another policy file) | counters | forget (clear the connection table)
//   | quit
import { createInterface } from "node:readline";
import { Datapath } from "../../src/datapath/datapath.ts";
import { listInterfaces, selectInterfaces } from "../../src/datapath/interfaces.ts";
import { decodeEvent } from "../../src/datapath/events.ts";
import { formatEventLine } from "../../src/datapath/event.ts";
import { acceptedOrThrow, acceptPolicyFile } from "../../src/host/accept-policy.ts";
import type { ImageRule } from "../../src/policy/compile/image.ts";

/** The policy as the daemon accepts it (src/host/accept-policy.ts); throws with every diagnostic. */
function loadForDatapath(path: string) {
  return acceptedOrThrow(acceptPolicyFile(path));
}

const nic = process.argv[2] ?? "";
const first = loadForDatapath(process.argv[3] ?? "");
const ingress = process.argv[4] === "tc" ? "tc" : "xdp";
const dp = Datapath.start({
  interfaces: selectInterfaces([nic], listInterfaces()).map((n) => ({ ...n, ingress })),
  pinRoot: null,
  image: first.image,
  socketHooks: false,
});
const rules = new Map<number, ImageRule[]>([[dp.generation, first.image.packet.rules]]);
const say = (line: string) => process.stdout.write(`${line}\n`);

dp.subscribe((record) =>
  say(
    `event ${formatEventLine(
      decodeEvent(record, {
        bootTimeMs: 0,
        rule: (index, generation) => rules.get(generation)?.[index],
        interfaceName: () => nic,
      }),
    )}`,
  ),
);
say(`ready ${JSON.stringify(dp.attachments)}`);

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const [cmd, arg = ""] = line.trim().split(/\s+/);
  try {
    if (cmd === "policy") {
      const { image } = loadForDatapath(arg);
      const { generation } = dp.apply(image);
      rules.set(generation, image.packet.rules);
      return say(`applied ${generation}`);
    }
    if (cmd === "counters") {
      const packets = Object.fromEntries(
        Object.entries(dp.counters()).map(([k, v]) => [k, Number(v.packets)]),
      );
      return say(`counters ${JSON.stringify(packets)}`);
    }
    if (cmd === "forget") return say(`forgot ${dp.clearConntrack()}`);
    if (cmd === "quit") {
      dp.stop();
      say("bye");
      rl.close();
      process.stdin.destroy(); // nothing else keeps the process alive
      return;
    }
    say(`error unknown command ${cmd}`);
  } catch (err) {
    say(`error ${(err as Error).message}`);
  }
});
rl.on("close", () => dp.stop());
