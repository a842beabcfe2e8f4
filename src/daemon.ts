// The moat daemon: wires the datapath to the event outputs and lives until a stop signal.
import { Datapath } from "./datapath/datapath.ts";
import { decodeEvent, formatEventLine, type MoatEvent } from "./datapath/events.ts";
import { checkPrerequisites } from "./datapath/prerequisites.ts";
import { listInterfaces, selectInterfaces } from "./datapath/interfaces.ts";

export interface DaemonOptions {
  interfaces: string[];
  json: boolean;
  pinRoot?: string | null;
  log: (line: string) => void;
}

export interface Daemon {
  datapath: Datapath;
  /** Resolves once stop() has detached everything. */
  stopped: Promise<void>;
  stop(): void;
}

export function startDaemon(options: DaemonOptions): Daemon {
  checkPrerequisites();
  const all = listInterfaces();
  const nics = selectInterfaces(options.interfaces, all);
  const names = new Map(all.map((n) => [n.ifindex, n.name]));
  const datapath = Datapath.start({ interfaces: nics, pinRoot: options.pinRoot });

  for (const o of datapath.objects) options.log(`loaded ${o.file}: ${o.programs.join(", ")}`);
  for (const a of datapath.attachments) {
    const pin = a.pin ? `, pinned at ${a.pin}` : "";
    options.log(
      `attached ${a.program} to ${a.interface} (ifindex ${a.ifindex}) ${a.hook} ${a.mode}, link ${a.linkId}${pin}`,
    );
  }
  if (nics.length === 0) options.log(`no interface matches ${options.interfaces.join(", ")}`);

  const bootTimeMs = Date.now() - Number(process.hrtime.bigint() / 1_000_000n);
  const print = (ev: MoatEvent) =>
    options.log(options.json ? JSON.stringify(ev) : formatEventLine(ev));
  datapath.subscribe((record) =>
    print(
      decodeEvent(record, {
        bootTimeMs,
        mode: "prevent",
        ruleName: () => "deny-list",
        interfaceName: (i) => names.get(i) ?? null,
      }),
    ),
  );

  let resolve: () => void = () => {};
  const stopped = new Promise<void>((r) => (resolve = r));
  let done = false;
  const stop = () => {
    if (done) return;
    done = true;
    datapath.stop();
    options.log("detached all programs; bye");
    resolve();
  };
  return { datapath, stopped, stop };
}
