// Ingress rules on SSH logins (layer7.ssh client_key/user) are judged by moat ssh-authkeys, for
// sshd, never by a packet: in the kernel's images they match nothing, and the rule that lets the
// TCP connection to sshd in is another one (docs/l7-ssh.md).
import type { Rule } from "../../config/model.ts";
import { unmatchable } from "./name-rules.ts";

export function sshLoginsAside(r: Rule): Rule {
  const ssh = r.layer7?.ssh;
  return r.direction === "ingress" && (ssh?.client_key || ssh?.user) ? unmatchable(r) : r;
}
