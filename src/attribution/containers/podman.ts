// podman: containers/storage's <root>/overlay-containers/containers.json lists every container
// ({id, names, image: <image id>, metadata: "{\"image-name\": ..., \"name\": ...}"}) and
// overlay-images/images.json names the images. Rootless podman keeps the same files under
// ~/.local/share/containers/storage. The vfs driver uses vfs-containers / vfs-images.

import { join } from "node:path";
import {
  field,
  first,
  readJson,
  rootOwner,
  rootPath,
  text,
  type StateHit,
  type StorageRoot,
} from "./state-file.ts";

const DRIVERS = ["overlay", "vfs"];

export function podmanContainer(id: string, roots: readonly StorageRoot[]): StateHit | null {
  for (const root of roots) {
    for (const driver of DRIVERS) {
      const file = join(rootPath(root), `${driver}-containers`, "containers.json");
      const list = readJson(file, rootOwner(root));
      if (!Array.isArray(list)) continue;
      const entry: unknown = list.find((c) => field(c, "id") === id);
      if (entry === undefined) continue;
      const meta = parseMetadata(field(entry, "metadata"));
      const name = first(field(entry, "names")) ?? text(field(meta, "name")) ?? "";
      const imageId = text(field(entry, "image")) ?? "";
      const image = text(field(meta, "image-name")) ?? imageName(root, driver, imageId) ?? imageId;
      return { container: { id, name, image }, file };
    }
  }
  return null;
}

function parseMetadata(value: unknown): unknown {
  if (typeof value !== "string") return undefined;
  try {
    return JSON.parse(value);
  } catch {
    return undefined;
  }
}

function imageName(root: StorageRoot, driver: string, imageId: string): string | undefined {
  const images = readJson(join(rootPath(root), `${driver}-images`, "images.json"), rootOwner(root));
  if (!Array.isArray(images)) return undefined;
  return first(
    field(
      images.find((i) => field(i, "id") === imageId),
      "names",
    ),
  );
}
