// The daemon's datapath at start: moat's relay for redirects with a PROXY header, the programs
// loaded with the first policy already applied and attached to the chosen interfaces and the
// cgroup, moat's own connections exempt from redirects, the owners of sockets bound before the
// accept hooks, and a log line for each thing loaded, attached or skipped.
import { boundSocketOwners, type Attribution } from "../attribution/index.ts";
import type { PolicyModel } from "../config/index.ts";
import {
  attachHooks,
  boundSockets,
  cgroupDirectory,
  closePreloaded,
  Datapath,
  listInterfaces,
  type DatapathOptions,
  planInterfaces,
  type Preloaded,
} from "../datapath/index.ts";
import type { PolicyImage } from "../policy/index.ts";
import { Relay } from "../redirect/index.ts";
import { attachLines } from "./attach-log.ts";

export interface DatapathStart {
  model: PolicyModel;
  image: PolicyImage;
  /** Overrides the policy's attach.interfaces. */
  interfaces?: string[];
  pinRoot?: string | null;
  attribution: Attribution;
  /** The DNS proxy's store: seeded from the names journal, then the first image's bindings. */
  names?: DatapathOptions["names"];
  /** The programs loaded while the policy was read (Datapath.preload). */
  preloaded?: Preloaded;
  log: (line: string) => void;
}

/** Writes the owners of the sockets bound before the accept hooks; returns how many. */
export function seedBoundOwners(
  datapath: Pick<Datapath, "seedOwners">,
  attribution: Attribution,
): number {
  return datapath.seedOwners(boundSocketOwners(attribution, boundSockets()));
}

/** Throws (having closed what it opened) when the programs cannot be loaded or attached. */
export async function startDatapath(
  start: DatapathStart,
): Promise<{ datapath: Datapath; relay: Relay }> {
  // what the closures below use, taken out of `start`: a closure over `start` would keep the first
  // policy's model, image and text for as long as the relay runs
  const { model, log, preloaded } = start;
  const patterns = start.interfaces ?? model.attach.interfaces.value;
  const nics = planInterfaces(attachHooks(model, start.interfaces), listInterfaces());
  let datapath: Datapath | undefined;
  // redirects with a PROXY header go through moat's relay (src/redirect/relay.ts)
  const relay = await Relay.open({
    original: (peer) => datapath?.originalOf(peer, "tcp") ?? null,
    redirect: (index, generation) => datapath?.redirectOf(index, generation) ?? null,
    log,
  }).catch((err: unknown) => {
    if (preloaded) closePreloaded(preloaded);
    throw err;
  });
  try {
    datapath = Datapath.start({
      interfaces: nics,
      pinRoot: start.pinRoot,
      image: relay.route(start.image),
      cgroup: cgroupDirectory(model.attach.cgroup?.value),
      ...(start.names ? { names: start.names } : {}),
      ...(preloaded ? { preloaded } : {}),
    });
  } catch (err) {
    relay.close();
    throw err;
  }
  // moat's own connections (the relay's, exporters') are never redirected
  datapath.exemptFromRedirects(process.pid);
  for (const line of attachLines(datapath)) log(line);
  // sockets bound before the accept hooks were attached: their owners from sock_diag and /proc
  if (datapath.attachments.some((a) => a.hook === "skb_ingress")) {
    const seeded = seedBoundOwners(datapath, start.attribution);
    log(`accept hook: owners of ${seeded} sockets bound before moat attached, from sock_diag`);
  }
  if (nics.length === 0) log(`no interface matches ${patterns.join(", ")}`);
  return { datapath, relay };
}
