// Docker: <root>/containers/<id>/config.v2.json ("Name": "/web", "Config": {"Image": "nginx:1.27"}).
// Config.Image is the image as the user named it; the top-level "Image" is only its digest.

import { join } from "node:path";
import { field, readJson, text, type StateHit } from "./state-file.ts";

export function dockerContainer(id: string, roots: readonly string[]): StateHit | null {
  for (const root of roots) {
    const file = join(root, "containers", id, "config.v2.json");
    const doc = readJson(file);
    if (doc === undefined) continue;
    const name = (text(field(doc, "Name")) ?? "").replace(/^\//, "");
    const image = text(field(doc, "Config", "Image")) ?? text(field(doc, "Image")) ?? "";
    return { container: { id, name, image }, file };
  }
  return null;
}
