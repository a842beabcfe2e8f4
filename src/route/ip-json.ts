// The parts of iproute2's JSON (`ip -j`) the mirror uses, narrowed from unknown with no trust in
// fields being present: older and newer iproute2 versions omit different ones.

export interface RawLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  linkType: string;
  kind: string;
  /** the link this one is enslaved to (a bridge, bond, team or vrf); "" for none */
  master: string;
  /** the link this one is stacked on (a macvlan's or vlan's lower device); "" for none */
  link: string;
  /** the link-layer address ("aa:bb:cc:dd:ee:ff"); "" for none */
  address: string;
}

export interface RawNexthop {
  dev: string;
  flags: string[];
}

export interface RawRoute {
  /** "unicast" when ip leaves it out */
  type: string;
  /** "default", "10.0.0.0/8" or a host address */
  dst: string;
  dev: string;
  metric: number;
  /** IPv4 type-of-service selector; routes with one match only flows with that tos */
  tos: string;
  flags: string[];
  nexthops: RawNexthop[];
}

export interface RawRule {
  priority: number;
  table: string;
  /** true when the rule selects on anything but "all traffic" */
  selective: boolean;
  action: string;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string => (typeof v === "string" ? v : "");
const num = (v: unknown): number => (typeof v === "number" ? v : 0);
const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];

function array(text: string, what: string): Json[] {
  // `ip -j` prints nothing (not "[]") for an empty table on some versions
  if (text.trim() === "") return [];
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed)) throw new Error(`${what}: expected a JSON array from ip -j`);
  return parsed.filter(isObject);
}

export function parseLinks(text: string): RawLink[] {
  return array(text, "links").map((l) => ({
    ifindex: num(l.ifindex),
    ifname: str(l.ifname),
    flags: strings(l.flags),
    linkType: str(l.link_type),
    kind: isObject(l.linkinfo) ? str(l.linkinfo.info_kind) : "",
    master: str(l.master),
    link: str(l.link),
    address: str(l.address),
  }));
}

export function parseRoutes(text: string): RawRoute[] {
  return array(text, "routes").map((r) => ({
    type: str(r.type) || "unicast",
    dst: str(r.dst),
    dev: str(r.dev),
    metric: num(r.metric),
    tos: str(r.tos) || str(r.dsfield),
    flags: strings(r.flags),
    nexthops: Array.isArray(r.nexthops)
      ? r.nexthops.filter(isObject).map((n) => ({ dev: str(n.dev), flags: strings(n.flags) }))
      : [],
  }));
}

const RULE_SELECTORS = [
  "dst",
  "srclen",
  "tos",
  "dsfield",
  "fwmark",
  "iif",
  "oif",
  "uidrange",
  "ipproto",
  "sport",
  "dport",
  "l3mdev",
  "not",
  "suppress_prefixlen",
  "suppress_ifgroup",
];

export function parseRules(text: string): RawRule[] {
  return array(text, "rules").map((r) => ({
    priority: num(r.priority),
    table: str(r.table),
    selective: (str(r.src) !== "all" && str(r.src) !== "") || RULE_SELECTORS.some((k) => k in r),
    action: str(r.action),
  }));
}
