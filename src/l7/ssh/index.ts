// SSH through moat's relay: the handler of outgoing connections (server version and host key),
// and the parser it is built on.
export {
  sshHandler,
  sshHandlerWith,
  sshFacts,
  SSH_TIMEOUT_MS,
  type SshHandlerOptions,
} from "./handler.ts";
export { SshHandshake, type SshSeen } from "./handshake.ts";
export { hostKeyOf, sha256Fingerprint, type HostKey } from "./host-key.ts";
export { SshProtocolError } from "./wire.ts";
