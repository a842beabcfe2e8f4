// CRI-O: containers/storage keeps each container's OCI spec at
// <root>/overlay-containers/<id>/userdata/config.json; CRI-O's annotations name it
// (io.kubernetes.container.name, io.kubernetes.cri-o.ImageName).

import { join } from "node:path";
import {
  field,
  readJson,
  rootOwner,
  rootPath,
  text,
  type StateHit,
  type StorageRoot,
} from "./state-file.ts";

export function crioContainer(id: string, roots: readonly StorageRoot[]): StateHit | null {
  for (const root of roots) {
    const file = join(rootPath(root), "overlay-containers", id, "userdata", "config.json");
    const doc = readJson(file, rootOwner(root));
    if (doc === undefined) continue;
    const a = (key: string) => text(field(doc, "annotations", key));
    const name =
      a("io.kubernetes.container.name") ??
      a("io.kubernetes.cri-o.ContainerName") ??
      a("io.kubernetes.cri-o.Name") ??
      "";
    const image = a("io.kubernetes.cri-o.ImageName") ?? a("io.kubernetes.cri-o.Image") ?? "";
    return { container: { id, name, image }, file };
  }
  return null;
}
