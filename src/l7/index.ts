// moat's layer-7 readers (docs/l7.md). QUIC: the ClientHello of a UDP 443 flow's Initials.
export { QuicInitialReader, readQuicClientHello, type QuicClientHello } from "./quic/index.ts";
