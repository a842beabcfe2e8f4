// Kernel events for links, addresses, routes and rules: an rtnetlink socket subscribed to their
// multicast groups (the addon's RtnlWatch). Messages are only a trigger: whoever listens reads
// the kernel's tables afresh. Bursts (a route flap, a container's veth pair coming up) are
// merged: one call once the events pause for `quietMs`, and at most one per `maxWaitMs` while
// they never pause, so a flood cannot turn into a storm of re-reads.
import { native } from "./addon.ts";

export type RtnlTopic = "link" | "address" | "route" | "rule";

/** rtnetlink multicast groups (RTNLGRP_*, linux/rtnetlink.h) per topic, IPv4 and IPv6. */
const GROUPS: Record<RtnlTopic, number[]> = {
  link: [1], // RTNLGRP_LINK
  address: [5, 9], // RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR
  route: [7, 11], // RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE
  rule: [8, 19], // RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE
};

/** The addon's bitmask (native/rtnl-watch.cc). */
const KIND: Record<RtnlTopic | "overrun", number> = {
  link: 1,
  address: 2,
  route: 4,
  rule: 8,
  overrun: 16,
};

export interface RtnlChange {
  topics: Set<RtnlTopic>;
  /** the socket's queue overflowed: events were lost, so anything may have changed */
  overrun: boolean;
}

export interface RtnlWatchOptions {
  /** a network namespace file (/proc/PID/ns/net, /run/netns/NAME); absent = moat's own */
  nsPath?: string;
  /** call once the events pause this long (default 100 ms) */
  quietMs?: number;
  /** but no later than this after the first event of a burst (default 2 s) */
  maxWaitMs?: number;
}

export interface RtnlWatch {
  close(): void;
}

/** Calls `onChange` after each burst of kernel changes to `topics`; close() stops it. */
export function watchRtnl(
  topics: RtnlTopic[],
  onChange: (change: RtnlChange) => void,
  options: RtnlWatchOptions = {},
): RtnlWatch {
  const quietMs = options.quietMs ?? 100;
  const maxWaitMs = options.maxWaitMs ?? 2_000;
  let pending = 0;
  let first = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const fire = () => {
    timer = undefined;
    const kinds = pending;
    pending = 0;
    if (closed) return;
    const names = (Object.keys(GROUPS) as RtnlTopic[]).filter((t) => kinds & KIND[t]);
    onChange({ topics: new Set(names), overrun: (kinds & KIND.overrun) !== 0 });
  };
  const socket = new (native().RtnlWatch)(
    topics.flatMap((t) => GROUPS[t]),
    (kinds: number) => {
      const now = performance.now();
      if (pending === 0) first = now;
      pending |= kinds;
      clearTimeout(timer);
      timer = setTimeout(fire, Math.max(0, Math.min(quietMs, first + maxWaitMs - now)));
    },
    options.nsPath,
  );
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      socket.close();
    },
  };
}
