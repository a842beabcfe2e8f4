// Keeps the packet programs on the interfaces `attach.interfaces` selects while the host changes:
// an interface created later (a container's veth, a VPN) gets them, a deleted or renamed one is
// released (links closed, pins removed), and a reload that changes `attach` (interfaces, their
// ingress hook, cgroup) applies it. rtnetlink link events (RTNLGRP_LINK, src/datapath/rtnl-watch.ts)
// are only a trigger: what is attached is decided from the kernel's own list of interfaces
// (/proc/self/net/dev, if_nametoindex). A lost event (a full socket queue) is reported by the
// kernel and leads to a look as well, so no periodic re-read is needed.
import type { InterfaceHooks, PolicyModel } from "../config/model.ts";
import type { Attachment, Datapath } from "./datapath.ts";
import { listInterfaces, planInterfaces, type PlannedInterface } from "./interfaces.ts";
import { unsupportedLink } from "./link-type.ts";
import { watchRtnl } from "./rtnl-watch.ts";
import type { XdpMode } from "./native.d.ts";

export interface AttachWatchOptions {
  datapath: Datapath;
  /** The attach.interfaces entries in force. */
  hooks: InterfaceHooks[];
  /** The cgroup directory the socket hooks are attached to (attach.cgroup), if any. */
  cgroup: string | undefined;
  xdpMode?: XdpMode;
  log: (line: string) => void;
  /** The socket hooks were attached to a new cgroup: seed the owners of sockets bound before. */
  onCgroupAttached?: () => void;
  /** Wait this long after a link event before looking (default 50 ms): one look per burst. */
  debounceMs?: number;
}

export interface AttachWatch {
  /** Applies a changed attach section: attaches what it adds, releases what it drops. */
  update(hooks: InterfaceHooks[], cgroup: string | undefined): void;
  /** Brings the attachments in line with the host's interfaces now. */
  sync(): void;
  close(): Promise<void>;
}

/** The log line of one attachment. */
export function describeAttachment(a: Attachment): string {
  const pin = a.pin ? `, pinned at ${a.pin}` : "";
  const how = a.updated ? " (updated in place)" : "";
  const why = a.why ? ` (${a.why})` : "";
  return `attached ${a.program} to ${a.interface} (ifindex ${a.ifindex}) ${a.hook} ${a.mode}${why}, link ${a.linkId}${how}${pin}`;
}

/** attach.interfaces of `model`, or the command line's names (ingress hook auto) when it gives some. */
export function attachHooks(model: PolicyModel, override?: string[]): InterfaceHooks[] {
  return override ? override.map((name) => ({ name, ingress: "auto" })) : model.attach.hooks;
}

/** What is attached to each interface now: its name and the hook of its incoming packets. */
function attachedInterfaces(datapath: Datapath): Map<number, { name: string; ingress: string }> {
  const out = new Map<number, { name: string; ingress: string }>();
  for (const a of datapath.attachments) {
    if (!a.ifindex) continue;
    const seen = out.get(a.ifindex) ?? { name: a.interface, ingress: "" };
    if (a.hook === "xdp") seen.ingress = "xdp";
    if (a.hook === "tc-ingress") seen.ingress = "tc";
    out.set(a.ifindex, seen);
  }
  return out;
}

export function watchAttach(options: AttachWatchOptions): AttachWatch {
  const { datapath, log } = options;
  let hooks = options.hooks;
  let cgroup = options.cgroup;
  /** Interfaces moat cannot judge (no Ethernet header), by "ifindex name": asked once. */
  const unsupported = new Map<string, string | null>();
  /** Names already said to be skipped (the daemon says so for those it found at start). */
  const announced = new Set(datapath.skipped.map((s) => s.interface));
  /** Attachments that failed, by "ifindex name hook": tried again after a reload only. */
  const failed = new Set<string>();
  let closed = false;

  const reasonNotTo = (nic: PlannedInterface): string | null => {
    const key = `${nic.ifindex} ${nic.name}`;
    if (!unsupported.has(key)) {
      const reason = unsupportedLink(nic.name);
      unsupported.set(key, reason);
      if (reason && !announced.has(nic.name)) log(`skipped ${nic.name}: ${reason}`);
      if (reason) announced.add(nic.name);
    }
    return unsupported.get(key) ?? null;
  };

  const release = (name: string, ifindex: number, why: string) => {
    for (const a of datapath.release(name, ifindex))
      log(`released ${a.program} from ${a.interface} (ifindex ${a.ifindex}) ${a.hook}: ${why}`);
  };

  function switchIngress(nic: PlannedInterface, from: string): void {
    try {
      const moved = datapath.switchIngress(nic, options.xdpMode ?? "auto", nic.ingress);
      for (const a of moved.attached) log(describeAttachment(a));
      for (const a of moved.released)
        log(
          `released ${a.program} from ${a.interface} (ifindex ${a.ifindex}) ${a.hook}: ingress hook now ${nic.ingress}`,
        );
    } catch (err) {
      // the new hook did not attach: the old one still judges; a reload tries again
      log(
        `warning: cannot move ${nic.name}'s ingress from ${from} to ${nic.ingress}: ${(err as Error).message}`,
      );
    }
  }

  function sync(): void {
    if (closed) return;
    let all;
    try {
      all = listInterfaces();
    } catch (err) {
      log(`warning: cannot list interfaces: ${(err as Error).message}`);
      return;
    }
    const attached = attachedInterfaces(datapath);
    // an interface attached under its name has the Ethernet header moat parses: not asked again
    const supported = (nic: PlannedInterface) =>
      attached.get(nic.ifindex)?.name === nic.name || !reasonNotTo(nic);
    const wanted = new Map(
      planInterfaces(hooks, all)
        .filter(supported)
        .map((nic) => [nic.ifindex, nic]),
    );
    const present = new Set(all.map((n) => n.ifindex));
    for (const [ifindex, had] of attached) {
      const want = wanted.get(ifindex);
      if (want && want.name === had.name && want.ingress === had.ingress) {
        wanted.delete(ifindex);
        // the same hook, perhaps for another reason now (an entry that said it, now auto)
        for (const a of datapath.attachments)
          if (a.ifindex === ifindex && (a.hook === "xdp" || a.hook === "tc-ingress"))
            a.why = want.why;
        continue;
      }
      if (want && want.name === had.name) {
        // the other ingress hook: attached before the old one goes, never a moment unjudged
        wanted.delete(ifindex);
        switchIngress(want, had.ingress);
        continue;
      }
      const why = !present.has(ifindex)
        ? "the interface is gone"
        : want
          ? want.name !== had.name
            ? `renamed to ${want.name}`
            : `ingress hook now ${want.ingress}`
          : "attach.interfaces no longer selects it";
      release(had.name, ifindex, why);
    }
    for (const nic of wanted.values()) {
      const key = `${nic.ifindex} ${nic.name} ${nic.ingress}`;
      if (failed.has(key)) continue;
      const before = datapath.attachments.length;
      try {
        datapath.attach(nic, options.xdpMode ?? "auto", nic.ingress);
      } catch (err) {
        // half attached (xdp but not tc): release that half; a reload tries again
        release(nic.name, nic.ifindex, "attaching failed");
        failed.add(key);
        log(`warning: cannot attach to ${nic.name}: ${(err as Error).message}`);
        continue;
      }
      for (const a of datapath.attachments.slice(before)) log(describeAttachment(a));
    }
    for (const cache of [unsupported, failed])
      for (const key of cache.keys())
        if (!present.has(Number(key.split(" ")[0]))) cache.delete(key);
  }

  function updateCgroup(next: string | undefined): void {
    if (next === cgroup) return;
    const before = datapath.attachments.length;
    if (next) {
      try {
        datapath.attachCgroup(next);
      } catch (err) {
        datapath.release(next, 0); // half attached: none of it, the old cgroup keeps its hooks
        throw err;
      }
      for (const a of datapath.attachments.slice(before)) log(describeAttachment(a));
    }
    // the next apply tells XDP whether new ingress connections wait for the accept hook
    datapath.acceptHooks = !!next;
    if (cgroup) release(cgroup, 0, "attach.cgroup changed");
    cgroup = next;
    if (next) options.onCgroupAttached?.();
  }

  const links = watchRtnl(["link"], () => sync(), { quietMs: options.debounceMs ?? 50 });

  return {
    update(nextHooks, nextCgroup) {
      hooks = nextHooks;
      failed.clear();
      updateCgroup(nextCgroup);
      sync();
    },
    sync,
    async close() {
      if (closed) return;
      closed = true;
      links.close();
    },
  };
}
