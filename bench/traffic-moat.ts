// The moat side of bench/traffic.ts and bench/bulk.ts, run inside the lab's receiving namespace:
// loads a policy that blocks the block list (read from argv[3], one CIDR a line) on ingress,
// attaches to argv[2] with the ingress hook argv[4] names (XDP generic or native, tc: tcx
// ingress, or auto: the hook moat chooses by default) and tc egress, says "ready" (with auto,
// which hook and why), prints the kernel's drop count (JSON) for every line read
// on stdin, and detaches when stdin ends.
import { readFileSync } from "node:fs";
import { parsePolicy } from "../src/config/index.ts";
import { Datapath } from "../src/datapath/datapath.ts";
import { listInterfaces, planInterfaces } from "../src/datapath/interfaces.ts";
import { compile } from "../src/policy/compile/compile.ts";
import { cidrEntry } from "./compile.ts";

const [device = "", listFile = "", mode = "generic"] = process.argv.slice(2);
const model = parsePolicy(
  `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
sets:
  blocklist: [192.0.2.0/24]
rules:
  - { name: blocklist, direction: ingress, action: block, layer3: { remote: [set:blocklist] } }
`,
  "traffic.yaml",
);
// a million entries go into the set directly: the loader's checks are not what is measured
const set = model.sets.get("blocklist");
if (set?.kind !== "address") throw new Error("no address set");
const pos = { file: "blocklist.txt", line: 1, col: 1, path: "sets.blocklist" };
set.entries.length = 0;
for (const text of readFileSync(listFile, "utf8").split("\n")) {
  if (!text) continue;
  set.entries.push(cidrEntry(text, pos));
}

const nic = listInterfaces().find((n) => n.name === device);
if (!nic) throw new Error(`no interface ${device}`);
const dp = Datapath.start({ interfaces: [], pinRoot: null, image: { packet: compile(model) } });
// generic (skb) XDP for trafgen: native XDP on a veth hands frames over through a 256-entry
// ring that pushes back on the sender, which trafgen's TX ring treats as fatal. Generic mode
// judges the same skbs nftables' netdev ingress hook sees. Native for the XDP generator.
let chosen = "";
if (mode === "auto") {
  const [planned] = planInterfaces([{ name: device, ingress: "auto" }], [nic]);
  if (!planned) throw new Error(`${device} not planned`);
  dp.attach(planned, "auto", planned.ingress);
  chosen = ` ${planned.ingress} (${planned.why})`;
} else if (mode === "tc") dp.attach(nic, "auto", "tc");
else dp.attach(nic, mode === "native" ? "native" : "generic");
console.log(`ready${chosen}`);
process.stdin.on("data", () => {
  const c = dp.counters();
  console.log(JSON.stringify({ dropped: String(c.drop.packets), passed: String(c.pass.packets) }));
});
process.stdin.on("end", () => dp.stop());
