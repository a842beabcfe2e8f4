// Runs moat's datapath inside a network namespace (started with `nsenter --net=...`) and obeys
// line commands on stdin, answering on stdout: for tests that drive traffic from another namespace.
//   deny ADDR PREFIXLEN | allow ADDR PREFIXLEN | counters | quit
import { createInterface } from "node:readline";
import { Datapath } from "../../src/datapath/datapath.ts";
import { listInterfaces, selectInterfaces } from "../../src/datapath/interfaces.ts";
import { parseAddress } from "../../src/datapath/address.ts";
import { decodeEvent, formatEventLine } from "../../src/datapath/events.ts";

const nic = process.argv[2] ?? "";
const dp = Datapath.start({ interfaces: selectInterfaces([nic], listInterfaces()), pinRoot: null });
const say = (line: string) => process.stdout.write(`${line}\n`);

dp.subscribe((record) =>
  say(
    `event ${formatEventLine(
      decodeEvent(record, {
        bootTimeMs: 0,
        mode: "prevent",
        ruleName: () => "deny-list",
        interfaceName: () => nic,
      }),
    )}`,
  ),
);
say(`ready ${JSON.stringify(dp.attachments)}`);

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const [cmd, addr = "", plen = "0"] = line.trim().split(/\s+/);
  try {
    if (cmd === "deny") dp.denyDestination(parseAddress(addr), Number(plen));
    else if (cmd === "allow") dp.allowDestination(parseAddress(addr), Number(plen));
    else if (cmd === "counters") {
      const c = dp.counters();
      return say(
        `counters ${JSON.stringify(c, (_k, v: unknown) => (typeof v === "bigint" ? Number(v) : v))}`,
      );
    } else if (cmd === "quit") {
      dp.stop();
      say("bye");
      rl.close();
      process.stdin.destroy(); // nothing else keeps the process alive
      return;
    }
    say("ok");
  } catch (err) {
    say(`error ${(err as Error).message}`);
  }
});
rl.on("close", () => dp.stop());
