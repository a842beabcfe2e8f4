// The image `make image` builds, run the way packaging/kubernetes/daemonset.yaml runs it. Docker
// (a dockerd of this test, in namespace b of a lab of this test) loads the docker archive and runs
// `moat --version` and `moat check` of the ConfigMap's policy in it, with no capability, the
// manifest's seccomp profile, host network and PID and a private cgroup namespace. Docker 20.10
// cannot grant CAP_BPF or CAP_PERFMON, so the daemon runs under runc (the runtime containerd runs
// for the kubelet) from the image's OCI layout, with the spec the manifest implies: the manifest's
// capabilities and nothing else, no network or PID namespace (namespace b is its host), its own
// cgroup namespace, the host's bpffs (rslave: HostToContainer) and cgroup v2 hierarchy, the
// seccomp profile, the policy read-only at /etc/moat. It attaches to b's veth and judges a real
// client in namespace a as the ConfigMap's policy (switched to prevent mode) says, and on SIGTERM
// detaches and unpins. The image is cached by the .deb's content (scripts/image.sh).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { createLab, status } from "../helpers/netns.ts";
import { startDockerLab } from "../helpers/docker-lab.ts";
import { PACKAGING_LOCK, ROOT } from "../helpers/paths.ts";
import { spawnLines } from "../helpers/child.ts";

const VERSION = (
  JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }
).version;
const K8S = join(ROOT, "packaging/kubernetes");

interface Manifest {
  data?: Record<string, string>;
  spec?: {
    template: {
      spec: { containers: { securityContext: { capabilities: { add: string[] } } }[] };
    };
  };
}
const manifest = (file: string) => parse(readFileSync(join(K8S, file), "utf8")) as Manifest;

interface RuntimeSpec {
  process: { terminal: boolean; args: string[]; capabilities: Record<string, string[]> };
  hostname?: string;
  mounts: { destination: string; type?: string; source: string; options?: string[] }[];
  linux: {
    namespaces: { type: string }[];
    cgroupsPath?: string;
    seccomp?: unknown;
  };
}

const CAP_NUMBERS: Record<string, number> = {
  DAC_READ_SEARCH: 2,
  NET_ADMIN: 12,
  SYS_PTRACE: 19,
  SYS_ADMIN: 21,
  SYS_RESOURCE: 24,
  PERFMON: 38,
  BPF: 39,
};

/** Whether this process may hand the capability on (a sandbox may lack one, e.g. SYS_RESOURCE). */
function inBoundingSet(cap: string): boolean {
  const hex = /^CapBnd:\s+([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
  const bit = CAP_NUMBERS[cap];
  assert.ok(hex && bit !== undefined, `unknown capability ${cap}`);
  return ((BigInt(`0x${hex}`) >> BigInt(bit)) & 1n) === 1n;
}

/** umoci's spec for the image, changed as the DaemonSet runs it (see the file's comment). */
function runtimeSpec(
  file: string,
  caps: string[],
  etc: string,
  pinDir: string,
  cgroupsPath: string,
): RuntimeSpec {
  const spec = JSON.parse(readFileSync(file, "utf8")) as RuntimeSpec;
  const set = caps.filter(inBoundingSet).map((c) => `CAP_${c}`);
  spec.process.terminal = false;
  spec.process.args = ["/usr/bin/moat", "run", "--policy", "/etc/moat/policy.yaml"];
  spec.process.args.push("--pin-dir", pinDir);
  spec.process.capabilities = { bounding: set, effective: set, permitted: set, inheritable: [] };
  // hostNetwork and hostPID: no network or pid namespace; a cgroup namespace of its own
  spec.linux.namespaces = spec.linux.namespaces
    .filter((n) => n.type !== "network" && n.type !== "pid")
    .concat([{ type: "cgroup" }]);
  spec.linux.cgroupsPath = cgroupsPath;
  spec.linux.seccomp = JSON.parse(readFileSync(join(K8S, "seccomp-moat.json"), "utf8"));
  const bind = (source: string, destination: string, options: string[]) => ({
    destination,
    type: "bind",
    source,
    options: ["rbind", ...options],
  });
  spec.mounts = spec.mounts
    .filter((m) => !["/sys/fs/bpf", "/sys/fs/cgroup", "/var/lib/moat"].includes(m.destination))
    .concat([
      bind("/sys/fs/bpf", "/sys/fs/bpf", ["rw", "rslave"]),
      bind("/sys/fs/cgroup", "/sys/fs/cgroup", ["ro"]),
      bind(etc, "/etc/moat", ["ro"]),
    ]);
  return spec;
}

test(
  "the image runs as the DaemonSet runs it: attaches and judges",
  { timeout: 1_200_000 },
  async (t) => {
    const started = Date.now();
    // under the packaging lock: the .deb test builds the same .deb, maybe at the same time
    const make = spawnSync(
      "flock",
      [PACKAGING_LOCK, "make", "-C", ROOT, "--no-print-directory", "image"],
      {
        encoding: "utf8",
        timeout: 1_200_000,
      },
    );
    assert.equal(make.status, 0, make.stderr + make.stdout.slice(-2000));
    const built = Date.now();

    const caps =
      manifest("daemonset.yaml").spec!.template.spec.containers[0]!.securityContext.capabilities
        .add;
    const policy = manifest("configmap.yaml").data!["policy.yaml"]!;
    const lab = createLab(t.name);
    t.after(() => lab.cleanup());
    const pinDir = `/sys/fs/bpf/moat-test-image-${lab.tag}-${process.pid}`;
    t.after(() => rmSync(pinDir, { recursive: true, force: true }));
    const etc = mkdtempSync(join(tmpdir(), "moat-image-policy-"));
    t.after(() => rmSync(etc, { recursive: true, force: true }));
    // the ConfigMap's policy, enforcing: its rules allow 10250 in and block the rest
    assert.match(policy, /^mode: detect$/m);
    writeFileSync(join(etc, "policy.yaml"), policy.replace(/^mode: detect$/m, "mode: prevent"), {
      mode: 0o400,
    });

    const docker = await startDockerLab(lab.tag, lab.b);
    try {
      const load = docker.docker(["load", "-i", join(ROOT, "build/image/moat-image.tar")], 120_000);
      assert.equal(load.status, 0, load.stderr);
      const image = `moat:${VERSION}`;

      // the image loads into Docker and its CLI runs there, with no capability at all
      const runFlags = [
        "--cap-drop",
        "ALL",
        "--network",
        "host",
        "--pid",
        "host",
        "--cgroupns",
        "private",
        "--security-opt",
        `seccomp=${join(K8S, "seccomp-moat.json")}`,
        "--security-opt",
        "no-new-privileges",
        "-v",
        `${etc}:/etc/moat:ro`,
      ];
      const version = docker.docker(["run", "--rm", ...runFlags, image, "--version"]);
      assert.equal(version.status, 0, version.stderr);
      assert.equal(version.stdout.trim(), `moat ${VERSION}`);
      const check = docker.docker([
        "run",
        "--rm",
        ...runFlags,
        image,
        "check",
        "/etc/moat/policy.yaml",
      ]);
      assert.equal(check.status, 0, check.stderr);
      assert.match(check.stdout, /policy\.yaml: ok/);
    } finally {
      assert.deepEqual(await docker.close(), [], "the docker lab left nothing behind");
    }
    const dockered = Date.now();

    // Docker 20.10 knows no CAP_BPF or CAP_PERFMON (it refuses --cap-add BPF): the daemon runs
    // under runc, the runtime under containerd and so under the kubelet, from the image's OCI layout,
    // with the spec the manifest implies
    const missing = caps.filter((c) => !inBoundingSet(c));
    if (missing.length)
      t.diagnostic(`not in this machine's bounding set, left out: ${missing.join(", ")}`);
    const bundle = mkdtempSync("/var/tmp/moat-image-bundle-");
    const id = `moat-image-${lab.tag}-${process.pid}`;
    const cgroupsPath = `/${id}`;
    const runcRoot = join(bundle, "runc");
    const runc = (args: string[]) =>
      spawnSync("runc", ["--root", runcRoot, ...args], { encoding: "utf8", timeout: 60_000 });
    // the container (and its cgroup) first, then the bundle and runc's state
    t.after(() => {
      runc(["kill", id, "KILL"]);
      runc(["delete", "-f", id]);
      const cg = readFileSync("/proc/self/mountinfo", "utf8").match(/ (\S+) \S+ - cgroup2 /)?.[1];
      if (cg && existsSync(join(cg, cgroupsPath))) rmdirSync(join(cg, cgroupsPath));
      rmSync(bundle, { recursive: true, force: true });
    });
    const unpack = spawnSync(
      "umoci",
      ["unpack", "--image", `${join(ROOT, "build/image/oci")}:${VERSION}`, join(bundle, "b")],
      { encoding: "utf8", timeout: 120_000 },
    );
    assert.equal(unpack.status, 0, unpack.stderr);
    writeFileSync(
      join(bundle, "b/config.json"),
      JSON.stringify(runtimeSpec(join(bundle, "b/config.json"), caps, etc, pinDir, cgroupsPath)),
    );

    const servers = [10250, 8080].map((port) =>
      spawn("ip", ["netns", "exec", lab.b, "nc", "-lk", lab.v4.b, String(port)], {
        stdio: "ignore",
      }),
    );
    t.after(() => servers.forEach((s) => s.kill()));
    // host network: runc starts in namespace b, and the spec asks for no network namespace
    // (nsenter, not ip netns exec, which would mount a /sys without the cgroup hierarchy)
    const daemon = spawnLines("nsenter", [
      `--net=/run/netns/${lab.b}`,
      "runc",
      "--root",
      runcRoot,
      "run",
      "--bundle",
      join(bundle, "b"),
      id,
    ]);
    await daemon.waitFor(/^moat is running/, 90_000);
    assert.ok(existsSync(pinDir), "the daemon pinned into the node's bpffs");

    const probe = (port: number) =>
      status("ip", ["netns", "exec", lab.a, "nc", "-z", "-w", "2", lab.v4.b, String(port)]);
    assert.equal(probe(10250), 0, "10250 allowed by the ConfigMap's policy");
    assert.notEqual(probe(8080), 0, "8080 blocked by the ConfigMap's policy");
    // the CLI in the container talks to the daemon's API socket
    const validate = runc(["exec", id, "moat", "policy", "validate", "/etc/moat/policy.yaml"]);
    assert.equal(validate.status, 0, validate.stderr + validate.stdout);
    assert.match(validate.stdout, /yaml: ok$/m);

    // SIGTERM (what the kubelet sends): the daemon detaches, unpins and exits 0
    assert.equal(runc(["kill", id, "TERM"]).status, 0);
    assert.equal(await daemon.exited, 0, daemon.stderr.join("\n"));
    assert.ok(!existsSync(pinDir), "the daemon removed its pins");
    assert.equal(probe(8080), 0, "detached: 8080 reachable again");
    t.diagnostic(
      `make image: ${((built - started) / 1000).toFixed(1)} s, docker: ${((dockered - built) / 1000).toFixed(1)} s, runc: ${((Date.now() - dockered) / 1000).toFixed(1)} s`,
    );
  },
);
