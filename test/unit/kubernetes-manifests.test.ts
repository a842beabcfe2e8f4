// packaging/kubernetes: every manifest validated against the Kubernetes OpenAPI schemas
// (kubernetes-models' validators, generated from them; offline), the DaemonSet's security
// settings as docs/kubernetes.md states them, the seccomp profile's bpf() allowance, and the
// ConfigMap's policy accepted by moat's own policy path.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { acceptPolicyText } from "../../src/policy/accept-text.ts";
import { textOnlyHost } from "../../src/config/index.ts";
import { ROOT } from "../helpers/paths.ts";

const DIR = join(ROOT, "packaging/kubernetes");
const load = (file: string): Record<string, unknown> =>
  parse(readFileSync(join(DIR, file), "utf8")) as Record<string, unknown>;

interface Container {
  securityContext: {
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    seccompProfile: { type: string; localhostProfile?: string };
    capabilities: { drop: string[]; add: string[] };
  };
  volumeMounts: {
    name: string;
    mountPath: string;
    mountPropagation?: string;
    readOnly?: boolean;
  }[];
}
interface PodSpec {
  hostNetwork?: boolean;
  hostPID?: boolean;
  containers: Container[];
  volumes: { name: string; hostPath?: { path: string }; configMap?: { name: string } }[];
}

function daemonSet(): { ds: DaemonSet; pod: PodSpec } {
  const ds = new DaemonSet(load("daemonset.yaml"));
  return { ds, pod: ds.spec!.template.spec as unknown as PodSpec };
}

test("the manifests validate against the Kubernetes OpenAPI schemas", () => {
  daemonSet().ds.validate();
  new ConfigMap(load("configmap.yaml")).validate();
  new Namespace(load("namespace.yaml")).validate();
});

test("the validator refuses what a cluster would refuse", () => {
  const bad = load("daemonset.yaml");
  const pod = (bad.spec as { template: { spec: PodSpec } }).template.spec;
  pod.containers[0]!.volumeMounts[0]!.mountPropagation = "Sideways";
  assert.throws(() => new DaemonSet(bad).validate(), /mountPropagation/);
  const noSelector = load("daemonset.yaml");
  delete (noSelector.spec as Record<string, unknown>).selector;
  assert.throws(() => new DaemonSet(noSelector).validate(), /selector/);
});

test("the DaemonSet: host network and PID, no privileged container, the service's capabilities", () => {
  const { pod } = daemonSet();
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.hostPID, true);
  const [moat] = pod.containers;
  const sc = moat!.securityContext;
  assert.notEqual(sc.privileged, true);
  assert.equal(sc.allowPrivilegeEscalation, false);
  assert.deepEqual(sc.capabilities.drop, ["ALL"]);
  assert.deepEqual([...sc.capabilities.add].sort(), [
    "BPF",
    "DAC_READ_SEARCH",
    "NET_ADMIN",
    "PERFMON",
    "SYS_ADMIN",
    "SYS_PTRACE",
    "SYS_RESOURCE",
  ]);
  // never more than the systemd unit's bounding set
  const unit = readFileSync(join(ROOT, "packaging/moat.service"), "utf8");
  const bounding = /^CapabilityBoundingSet=(.*)$/m.exec(unit)![1]!.split(/\s+/);
  for (const cap of sc.capabilities.add) assert.ok(bounding.includes(`CAP_${cap}`), cap);
  assert.deepEqual(sc.seccompProfile, {
    type: "Localhost",
    localhostProfile: "profiles/moat.json",
  });

  const mount = (path: string) => moat!.volumeMounts.find((m) => m.mountPath === path);
  const volume = (name: string) => pod.volumes.find((v) => v.name === name)!;
  const bpf = mount("/sys/fs/bpf")!;
  assert.equal(bpf.mountPropagation, "HostToContainer");
  assert.equal(volume(bpf.name).hostPath?.path, "/sys/fs/bpf");
  assert.equal(volume(mount("/sys/fs/cgroup")!.name).hostPath?.path, "/sys/fs/cgroup");
  const policy = mount("/etc/moat")!;
  assert.equal(policy.readOnly, true);
  assert.equal(
    volume(policy.name).configMap?.name,
    (load("configmap.yaml").metadata as { name: string }).name,
  );
});

test("the seccomp profile allows bpf() and perf_event_open, refuses the rest by default", () => {
  const profile = JSON.parse(readFileSync(join(DIR, "seccomp-moat.json"), "utf8")) as {
    defaultAction: string;
    syscalls: { names: string[]; action: string }[];
  };
  assert.equal(profile.defaultAction, "SCMP_ACT_ERRNO");
  const allowed = new Set(
    profile.syscalls.filter((s) => s.action === "SCMP_ACT_ALLOW").flatMap((s) => s.names),
  );
  for (const name of ["bpf", "perf_event_open", "setns", "clone3", "epoll_pwait2"])
    assert.ok(allowed.has(name), `${name} allowed`);
  for (const name of [
    "kexec_load",
    "init_module",
    "finit_module",
    "open_by_handle_at",
    "ptrace",
    "keyctl",
  ])
    assert.ok(!allowed.has(name), `${name} refused`);
});

test("the ConfigMap's policy is accepted by moat and starts in detect mode", () => {
  const text = (load("configmap.yaml").data as Record<string, string>)["policy.yaml"]!;
  const accepted = acceptPolicyText(text, "/etc/moat/policy.yaml", { host: textOnlyHost });
  assert.deepEqual(
    accepted.diagnostics.filter((d) => d.severity === "error"),
    [],
  );
  assert.ok(accepted.policy, "compiled");
  assert.equal(accepted.policy.model.mode, "detect");
});
