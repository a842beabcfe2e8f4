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
