// What moat ssh-authkeys (sshd's AuthorizedKeysCommand) reads from the host: the connection of
// the sshd that runs it, and the break-glass keys. Light on purpose: sshd runs it at every login.
export { sshdPeer, type SshdPeer } from "./peer.ts";
export { BREAK_GLASS_FILE, breakGlassKeys } from "./break-glass.ts";
