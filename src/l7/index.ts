// moat's L7 relay: judges the connections L7 rules (layer7.http, tls, ssh) may match by their
// first bytes, then leaves the data path (docs/l7.md).
export {
  L7Relay,
  copyBothWays,
  type L7Protocol,
  type L7RelayOptions,
  type L7RelayStats,
  type UpstreamPurpose,
} from "./relay.ts";
export { sniff, type Sniffed } from "./sniff.ts";
export type {
  L7Context,
  L7Decision,
  L7Handler,
  SpliceMode,
  ConnectionFacts,
  Layer7Facts,
} from "./types.ts";
export { QuicInitialReader, readQuicClientHello, type QuicClientHello } from "./quic/index.ts";
