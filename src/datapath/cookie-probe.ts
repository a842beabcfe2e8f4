// Whether this kernel has bpf_sk_assign_tcp_reqsk() (Linux 6.9+), the kfunc that hands a
// connection answered with moat's SYN cookies to the listening socket: its name in the kernel's
// BTF. Read once.
import { readFileSync } from "node:fs";

const VMLINUX_BTF = "/sys/kernel/btf/vmlinux";
let known: boolean | undefined;

export function cookieKfunc(): boolean {
  if (known === undefined) {
    try {
      known = readFileSync(VMLINUX_BTF).includes("\0bpf_sk_assign_tcp_reqsk\0");
    } catch {
      known = false;
    }
  }
  return known;
}
