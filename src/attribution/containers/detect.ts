// Which container a cgroup path belongs to, from the names the runtimes give their cgroups.
// Pure. The deepest matching component wins, so a process in a sub-cgroup of a container (systemd
// inside the container, or a runtime's "init" leaf) is still the container's.
//
//   docker      /system.slice/docker-<id>.scope         (systemd cgroup driver)
//               /docker/<id>                            (cgroupfs driver)
//   containerd  .../cri-containerd-<id>.scope           (systemd driver, Kubernetes)
//               .../kubepods/<qos>/pod<uid>/<id>        (cgroupfs driver)
//   podman      .../libpod-<id>.scope, also in user.slice for rootless
//               /libpod_parent/libpod-<id>              (cgroupfs manager)
//   cri-o       .../crio-<id>.scope, /kubepods/.../crio-<id>
// The runtimes' monitors (libpod-conmon-<id>.scope, crio-conmon-<id>.scope) are not containers.
// A name is only a claim (a user can make such a cgroup in a subtree delegated to them): whose
// state may back it is decided by who owns the matched cgroup (directory.ts).

export type Runtime = "docker" | "containerd" | "podman" | "crio";

export interface ContainerRef {
  /** Runtimes whose state may hold this id, most likely first. */
  runtimes: Runtime[];
  id: string;
  /** The cgroup whose name matched (the path up to and including that component). */
  cgroup: string;
}

const ID = "([0-9a-f]{64})";
const SCOPED: [RegExp, Runtime[]][] = [
  [new RegExp(`^docker-${ID}\\.scope$`), ["docker"]],
  [new RegExp(`^cri-containerd-${ID}\\.scope$`), ["containerd"]],
  [new RegExp(`^libpod-${ID}(?:\\.scope)?$`), ["podman"]],
  [new RegExp(`^crio-${ID}(?:\\.scope)?$`), ["crio"]],
];
const BARE = new RegExp(`^${ID}$`);

export function containerRefOf(cgroup: string): ContainerRef | null {
  const parts = cgroup.split("/").filter(Boolean);
  for (let i = parts.length - 1; i >= 0; i--) {
    const part = parts[i] ?? "";
    const at = "/" + parts.slice(0, i + 1).join("/");
    for (const [pattern, runtimes] of SCOPED) {
      const id = pattern.exec(part)?.[1];
      if (id) return { runtimes, id, cgroup: at };
    }
    const bare = BARE.exec(part)?.[1];
    if (bare) {
      const parent = parts[i - 1] ?? "";
      if (parent === "docker") return { runtimes: ["docker"], id: bare, cgroup: at };
      // cgroupfs-driver Kubernetes (under kubelet's --cgroup-root, so not always at the top):
      // containerd, docker (cri-dockerd) or CRI-O put the bare id there
      if (parts.slice(0, i).some((p) => p.startsWith("kubepods")))
        return { runtimes: ["containerd", "docker", "crio"], id: bare, cgroup: at };
    }
  }
  return null;
}
