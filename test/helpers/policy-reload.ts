// Replaces a running lab's policy file and waits until the daemon enforces exactly that text: its
// status reports the text's sha256 (a generation number alone can be taken by another reload: a
// recompile when a cgroup appears, the file's first write). A refused reload fails at once with
// its errors.
import { createHash } from "node:crypto";
import { http } from "./api-client.ts";
import type { MoatLab } from "./moat-lab.ts";

export async function reloadPolicy(lab: MoatLab, text: string, timeoutMs = 20_000): Promise<void> {
  const want = createHash("sha256").update(text).digest("hex");
  const from = lab.daemon.lines.length;
  lab.writePolicy(text);
  const end = Date.now() + timeoutMs;
  for (;;) {
    const said = lab.daemon.lines.slice(from);
    const refused = said.findIndex((l) => l.includes("reload refused"));
    if (refused >= 0) throw new Error(`the policy was refused:\n${said.slice(refused).join("\n")}`);
    const r = await http({ socketPath: lab.apiSocket }, "GET", "/v1/status");
    if (r.status === 200 && (JSON.parse(r.body) as { policyHash?: string }).policyHash === want)
      return;
    if (Date.now() > end)
      throw new Error(`the daemon did not apply the policy:\n${text}\n${said.join("\n")}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}
