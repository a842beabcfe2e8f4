// Who owns a socket: the `process` object of an event (docs/attribution.md). Pure types,
// shared by attribution (which builds them) and the reference evaluator (which judges them).

export interface ContainerFacts {
  /** The runtime's full id (64 hex for Docker, containerd, podman and CRI-O). */
  id: string;
  name: string;
  /** The image as the runtime recorded it, e.g. "nginx:1.27" or "docker.io/library/nginx:1.27". */
  image: string;
}

export interface ProcessFacts {
  pid: number;
  /** comm (at most 15 characters). */
  name: string;
  /** The executable (readlink /proc/PID/exe); "" when the kernel will not say (kernel threads). */
  path: string;
  /** uid. */
  user: number;
  /** The uid's name in /etc/passwd; null = the uid has no entry. */
  userName?: string | null;
  /** cgroup v2 path from the cgroup2 root, e.g. "/system.slice/nginx.service". */
  cgroup: string;
  /** null = not in a container. */
  container: ContainerFacts | null;
}
