// The datapath: loads and attaches moat's kernel programs, writes compiled policies atomically,
// reads counters and the connection table, and decodes kernel events into moat's event.
export {
  closePreloaded,
  Datapath,
  type Attachment,
  type Counters,
  type DatapathOptions,
  type Preloaded,
  type Timeouts,
} from "./datapath.ts";
export { decodeEvent, decodeOwner, protocolName, type DecodeContext } from "./events.ts";
export {
  kernelMonotonicNs,
  KernelWallClock,
  wallTimeMs,
  type WallTimeSource,
} from "./kernel-clock.ts";
export { CtFlag, IdsConst } from "./abi.ts";
export { eventJson } from "./event-json.ts";
export { decodeQuicInitial, type QuicDatagram } from "./quic-initial.ts";
export { decodeIdsCopy, type IdsCopy } from "./ids-record.ts";
export { cutIdsConnection, idsConnection, type IdsConnection, type IdsCut } from "./ids-cut.ts";
export {
  conntrackExpired,
  type ConntrackCounts,
  type ConntrackEntry,
  type ConntrackView,
} from "./conntrack.ts";
export {
  formatEventLine,
  type DnsExchange,
  type Endpoint,
  type EventKind,
  type EventReason,
  type FlowTotals,
  type MoatEvent,
  type EventLayer7,
  type QuicLayer7,
  type SynFloodAttack,
  type IdsMatchFacts,
} from "./event.ts";
export { GenerationRecord, KEPT_GENERATIONS, type GenerationContents } from "./generations.ts";
export { richRules, ruleName, type RuleList } from "./kept-rules.ts";
export { listInterfaces, planInterfaces, type NetInterface } from "./interfaces.ts";
export { attachHooks, describeAttachment, watchAttach, type AttachWatch } from "./attach-watch.ts";
export { destroyBlockedSocket, type DestroyedSocket } from "./post-route.ts";
export { connectionsOf, cutConnections, type CutReport } from "./cut-connections.ts";
export {
  cgroup2Mount,
  cgroupDirectory,
  checkPrerequisites,
  PrerequisiteError,
} from "./prerequisites.ts";
export type { OriginalDestination, SocketAddress } from "./redirect-maps.ts";
export type { RelayedConnection } from "./relay-socket.ts";
export type { ApplyResult, RuleCounter } from "./policy-maps.ts";
export type { NameBinding, NameIdentity } from "./name-maps.ts";
export type { JournaledName, JournalKey } from "./name-journal.ts";
export { boundSockets } from "./bound-sockets.ts";
export { holdMallocThresholds, MALLOC_THRESHOLDS, trimMemory } from "./trim-memory.ts";
export { watchRtnl, type RtnlChange, type RtnlTopic, type RtnlWatch } from "./rtnl-watch.ts";
export { netnsSocket, type NetnsSocket, type NetnsSocketSpec } from "./netns-socket.ts";
export type { SpliceMode, SpliceOptions, SpliceResult, SpliceStats } from "./splice.ts";
export { PIN_ROOT } from "./bpffs.ts";
export { removeLeftoverPins, type Leftovers } from "./leftovers.ts";
export { daemonsPinning, PinsInUseError, refuseLivePins } from "./pin-owners.ts";
export type { FloodCounters, PortAttack } from "./flood-maps.ts";
