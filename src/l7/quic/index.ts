// QUIC Initials (docs/l7-quic.md): the ClientHello of a UDP 443 flow's first client datagrams.
export { QuicInitialReader, readQuicClientHello, type QuicClientHello } from "./initial-reader.ts";
export { clientInitialKeys, QUIC_V1, QUIC_V2 } from "./initial-keys.ts";
export { readInitials } from "./initial-packet.ts";
