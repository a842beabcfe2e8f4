// The 100k-rule case of bench/footprint.ts, in a process of its own: the daemon refuses a policy
// file over 4 MiB and 100k rules are ~15 MB of YAML, so this process holds what the daemon holds
// for them: the model, its compiled image, and the datapath with the image in the kernel's maps
// and XDP on the veth (argv[2]). Says "ready" with its own memory breakdown, then idles until
// stdin ends.
import { Datapath } from "../src/datapath/datapath.ts";
import { listInterfaces } from "../src/datapath/interfaces.ts";
import { compile } from "../src/policy/compile/compile.ts";
import { mixedModel } from "./compile.ts";

const [device = "", count = "100000"] = process.argv.slice(2);
const model = mixedModel(Number(count));
const nic = listInterfaces().find((n) => n.name === device);
if (!nic) throw new Error(`no interface ${device}`);
const dp = Datapath.start({ interfaces: [], pinRoot: null, image: { packet: compile(model) } });
dp.attach(nic, "generic");
// what a long-running daemon would have collected by now
(globalThis as { gc?: () => void }).gc?.();
const m = process.memoryUsage();
console.log(
  `ready ${JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, rules: model.rules.length })}`,
);
process.stdin.resume();
process.stdin.on("end", () => dp.stop());
