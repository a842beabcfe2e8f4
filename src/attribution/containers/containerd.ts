// containerd (and Kubernetes on it): the runtime v2 shim's bundle,
// <root>/<namespace>/<id>/config.json, an OCI spec whose annotations the CRI plugin fills:
// io.kubernetes.cri.container-name / image-name (sandbox-name for a pod's pause container).
// nerdctl writes nerdctl/name. The bundle exists while the task runs: no daemon needed.

import { readdirSync } from "node:fs";
import { join } from "node:path";
import { field, readJson, text, type StateHit } from "./state-file.ts";

export function containerdContainer(id: string, roots: readonly string[]): StateHit | null {
  for (const root of roots) {
    let namespaces: string[];
    try {
      namespaces = readdirSync(root);
    } catch {
      continue;
    }
    for (const ns of namespaces) {
      const file = join(root, ns, id, "config.json");
      const doc = readJson(file);
      if (doc === undefined) continue;
      const a = (key: string) => text(field(doc, "annotations", key));
      const name =
        a("io.kubernetes.cri.container-name") ??
        a("io.kubernetes.cri.sandbox-name") ??
        a("nerdctl/name") ??
        "";
      const image = a("io.kubernetes.cri.image-name") ?? a("nerdctl/image") ?? "";
      return { container: { id, name, image }, file };
    }
  }
  return null;
}
