// A moat event as OpenTelemetry attributes: semantic-convention names where one exists
// (network.*, source.*, destination.*, client.*, server.*, process.*, container.id) and moat.*
// for the firewall's own facts. Shared by the log records and the connection spans.
import type { Attributes } from "@opentelemetry/api";
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_CLIENT_PORT,
  ATTR_CONTAINER_ID,
  ATTR_NETWORK_TRANSPORT,
  ATTR_NETWORK_TYPE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
} from "@opentelemetry/semantic-conventions";
import type { Endpoint, MoatEvent } from "../../datapath/event.ts";

// Incubating in semantic-conventions (the package advises copying rather than importing them).
const ATTR_SOURCE_ADDRESS = "source.address";
const ATTR_SOURCE_PORT = "source.port";
const ATTR_DESTINATION_ADDRESS = "destination.address";
const ATTR_DESTINATION_PORT = "destination.port";
const ATTR_NETWORK_INTERFACE_NAME = "network.interface.name";
const ATTR_PROCESS_PID = "process.pid";
const ATTR_PROCESS_EXECUTABLE_NAME = "process.executable.name";
const ATTR_PROCESS_EXECUTABLE_PATH = "process.executable.path";
const ATTR_PROCESS_USER_ID = "process.user.id";
const ATTR_PROCESS_LINUX_CGROUP = "process.linux.cgroup";

const PORTLESS = new Set(["icmp", "icmpv6"]);

/** Source = who opened the connection: the remote peer for ingress, this host for egress. */
export function endsOf(ev: MoatEvent): { source: Endpoint; destination: Endpoint } {
  return ev.direction === "ingress"
    ? { source: ev.remote, destination: ev.local }
    : { source: ev.local, destination: ev.remote };
}

export function connectionAttributes(ev: MoatEvent): Attributes {
  const { source, destination } = endsOf(ev);
  const ports = !PORTLESS.has(ev.protocol);
  const a: Attributes = {
    [ATTR_NETWORK_TRANSPORT]: ev.protocol,
    [ATTR_NETWORK_TYPE]: ev.local.ip.includes(":") ? "ipv6" : "ipv4",
    [ATTR_SOURCE_ADDRESS]: source.ip,
    [ATTR_DESTINATION_ADDRESS]: destination.ip,
    // the initiator is the client and the other end the server, as docs/policy.md defines
    [ATTR_CLIENT_ADDRESS]: source.ip,
    [ATTR_SERVER_ADDRESS]: destination.ip,
    "moat.direction": ev.direction,
    "moat.verdict": ev.verdict,
    "moat.rule": ev.rule,
    "moat.mode": ev.mode,
    "moat.hook": ev.hook,
    "moat.policy.generation": ev.generation,
  };
  if (ports) {
    a[ATTR_SOURCE_PORT] = source.port;
    a[ATTR_DESTINATION_PORT] = destination.port;
    a[ATTR_CLIENT_PORT] = source.port;
    a[ATTR_SERVER_PORT] = destination.port;
  }
  if (ev.icmp) {
    a["moat.icmp.type"] = ev.icmp.type;
    a["moat.icmp.code"] = ev.icmp.code;
  }
  if (ev.interface) a[ATTR_NETWORK_INTERFACE_NAME] = ev.interface;
  if (ev.connection) a["moat.connection.id"] = ev.connection;
  Object.assign(a, processAttributes(ev.process));
  return a;
}

function processAttributes(p: MoatEvent["process"]): Attributes {
  if (!p) return {};
  const a: Attributes = {
    [ATTR_PROCESS_PID]: p.pid,
    [ATTR_PROCESS_EXECUTABLE_NAME]: p.name,
    [ATTR_PROCESS_EXECUTABLE_PATH]: p.path,
    [ATTR_PROCESS_USER_ID]: p.user,
    [ATTR_PROCESS_LINUX_CGROUP]: p.cgroup,
  };
  if (p.container) a[ATTR_CONTAINER_ID] = p.container.id;
  return a;
}

/** What a single event adds: its type and reason, and a closed connection's totals. */
export function eventAttributes(ev: MoatEvent): Attributes {
  const a: Attributes = {
    ...connectionAttributes(ev),
    "moat.event.type": ev.type,
    "moat.reason": ev.reason,
  };
  // rate_limit and tcp_flags reports stand for this many packets
  if (ev.aggregated) a["moat.aggregated.packets"] = ev.aggregated.packets;
  // the rule matched through a feed or a dynamic set
  if (ev.feed) {
    a["moat.feed.name"] = ev.feed.name;
    a["moat.feed.kind"] = ev.feed.kind;
    if (ev.feed.category !== undefined) a["moat.feed.category"] = ev.feed.category;
    if (ev.feed.confidence !== undefined) a["moat.feed.confidence"] = ev.feed.confidence;
  }
  return ev.stats ? { ...a, ...closeAttributes(ev) } : a;
}

export function closeAttributes(ev: MoatEvent): Attributes {
  if (!ev.stats) return { "moat.close.reason": ev.reason };
  return {
    "moat.close.reason": ev.reason,
    "moat.connection.packets": ev.stats.packets,
    "moat.connection.bytes": ev.stats.bytes,
    "moat.connection.duration_ms": ev.stats.durationMs,
  };
}
