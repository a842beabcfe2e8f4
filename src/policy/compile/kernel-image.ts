// What the compiler hands the datapath, and the only type they share: a policy's tables for the
// packet hooks, and when the policy needs them, the socket hooks' own tables with the process
// classes and the redirects' tables with their targets. src/datapath writes it into the kernel
// atomically; compilePolicy (policy-image.ts) makes it.
import type { ClassifierImage } from "./image.ts";
import type { NameClasses } from "./names.ts";
import type { ProcessImage } from "./process.ts";
import type { RedirectImage } from "./redirect.ts";

export interface PolicyImage {
  /** The packet hooks' tables (XDP, TC): a rule naming a process or interface matches nothing. */
  packet: ClassifierImage;
  /**
   * When rules name processes: the socket hooks' own tables (the process class in the client-port
   * slot) and the process classes (policy-image.ts). Absent: the socket hooks use `packet`.
   */
  socket?: { image: ClassifierImage; process: ProcessImage };
  /** When the policy has redirects: their own tables and targets (redirect.ts). */
  redirect?: RedirectImage;
  /**
   * When rules name hosts: the names image (image 3, only the rules naming hosts, their remote
   * lists as name classes 0.0.0.N) and the classes the DNS proxy binds addresses to.
   */
  names?: { image: ClassifierImage; classes: NameClasses };
}

/**
 * What the socket hooks may leave out under a policy, because no rule reads its result
 * (moat_meta.lean in bpf/include/moat_abi.h). `skipRecord`: a connect()/sendmsg() that is allowed
 * silently keeps no socket record (no rule judges by process, host name or layer 7, none logs, no
 * redirect: the owner is read only for a connection that is reported, redirected or left to the
 * tc hook). `skipExe`: the owner's executable inode is not read (no process rule's path names an
 * executable on this host, and no names or redirects identify the caller by it).
 */
export function socketLean(policy: PolicyImage): { skipRecord: boolean; skipExe: boolean } {
  const plain = !policy.names && !policy.redirect?.targets.length;
  const rules = policy.packet.rules;
  return {
    skipRecord: plain && !policy.socket && !rules.some((r) => r.log || r.layer7),
    skipExe: plain && (!policy.socket || policy.socket.process.exe.length === 0),
  };
}
