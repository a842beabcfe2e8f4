// The lines the daemon logs at start about what it loaded and attached, and what it skipped.
import { describeAttachment, type Datapath } from "../datapath/index.ts";

export function attachLines(
  datapath: Pick<Datapath, "objects" | "attachments" | "skipped" | "pinnedReport">,
): string[] {
  const lines = datapath.objects.map((o) => `loaded ${o.file}: ${o.programs.join(", ")}`);
  lines.push(...datapath.attachments.map(describeAttachment));
  lines.push(...datapath.pinnedReport());
  for (const s of datapath.skipped) lines.push(`skipped ${s.interface}: ${s.reason}`);
  return lines;
}
