// The lines the daemon logs at start about what it loaded and attached, and what it skipped.
import type { Datapath } from "../datapath/index.ts";

export function attachLines(
  datapath: Pick<Datapath, "objects" | "attachments" | "skipped" | "pinnedReport">,
): string[] {
  const lines = datapath.objects.map((o) => `loaded ${o.file}: ${o.programs.join(", ")}`);
  for (const a of datapath.attachments) {
    const pin = a.pin ? `, pinned at ${a.pin}` : "";
    const how = a.updated ? " (updated in place)" : "";
    lines.push(
      `attached ${a.program} to ${a.interface} (ifindex ${a.ifindex}) ${a.hook} ${a.mode}, link ${a.linkId}${how}${pin}`,
    );
  }
  lines.push(...datapath.pinnedReport());
  for (const s of datapath.skipped) lines.push(`skipped ${s.interface}: ${s.reason}`);
  return lines;
}
