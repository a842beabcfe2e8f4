// Redirects in user space: the PROXY headers moat's relay writes, the redirects refused at load
// (with their position), the targets that cannot be reached, and what the evaluator says.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatDiagnostic, parsePolicy } from "../../src/config/index.ts";
import { evaluate, type Decision } from "../../src/policy/evaluator.ts";
import { redirectProblems } from "../../src/policy/redirect-support.ts";
import { unreachableTargets } from "../../src/host/redirect-reach.ts";
import { proxyHeaderV1, proxyHeaderV2 } from "../../src/redirect/proxy-header.ts";

test("PROXY v2: signature, command, TCP over IPv4, addresses and ports", () => {
  const h = proxyHeaderV2({
    source: { ip: "10.0.0.5", port: 40000 },
    destination: { ip: "192.0.2.7", port: 80 },
  });
  assert.equal(
    h.toString("hex"),
    "0d0a0d0a000d0a515549540a" + "21" + "11" + "000c" + "0a000005" + "c0000207" + "9c40" + "0050",
  );
});

test("PROXY v2 with an IPv6 end: both as IPv6, IPv4 mapped", () => {
  const h = proxyHeaderV2({
    source: { ip: "127.0.0.1", port: 1 },
    destination: { ip: "2001:db8::7", port: 443 },
  });
  assert.equal(h[13], 0x21);
  assert.equal(h.readUInt16BE(14), 36);
  assert.equal(h.subarray(16, 32).toString("hex"), "00000000000000000000ffff7f000001");
  assert.equal(h.subarray(32, 48).toString("hex"), "20010db8000000000000000000000007");
  assert.equal(h.readUInt16BE(50), 443);
});

test("PROXY v1: one text line", () => {
  const c = { source: { ip: "10.0.0.5", port: 40000 }, destination: { ip: "192.0.2.7", port: 80 } };
  assert.equal(proxyHeaderV1(c).toString(), "PROXY TCP4 10.0.0.5 192.0.2.7 40000 80\r\n");
});

const POLICY = `version: 1
mode: prevent
attach: { cgroup: / }
rules:
  - { name: no-ssh, direction: egress, action: block, layer4: { protocol: tcp, port: [22] } }
  - { name: watch, direction: egress, action: block, mode: detect, layer4: { protocol: tcp, port: [8443] } }
redirect:
  - name: by-curl
    match: { direction: egress, layer4: { protocol: tcp, port: [8080] }, process: { name: [curl] } }
    to: 127.0.0.1:3128
  - name: web
    match: { direction: egress, layer4: { protocol: tcp, port: [80, 22, 8080, 8443] } }
    to: "[::1]:3129"
    proxy_protocol: v2
`;

test("redirects the socket hooks cannot carry out are refused at their position", () => {
  const text = `version: 1
redirect:
  - name: inbound
    match: { direction: ingress, layer4: { protocol: tcp, port: [22] } }
    to: 127.0.0.1:1
  - name: by-source
    match: { direction: egress, layer4: { protocol: tcp, source_port: [1000] } }
    to: 127.0.0.1:1
  - name: pings
    match: { direction: egress, layer4: { protocol: icmp } }
    to: 127.0.0.1:1
  - name: udp-header
    match: { direction: egress, layer4: { protocol: udp } }
    to: 127.0.0.1:1
    proxy_protocol: v2
`;
  const found = redirectProblems(parsePolicy(text, "p.yaml")).map(formatDiagnostic);
  const at = (line: number, i: number, name: string, message: string) =>
    `p.yaml:${line}:5 redirect[${i}]: redirect '${name}': ${message}`;
  const cgroup = `set attach.cgroup (e.g. "/") so the socket hooks see the connections to redirect`;
  assert.deepEqual(found, [
    at(3, 0, "inbound", cgroup),
    at(
      3,
      0,
      "inbound",
      "redirects act on connections this host opens (connect()): use 'direction: egress'",
    ),
    at(6, 1, "by-source", cgroup),
    at(
      6,
      1,
      "by-source",
      "connect() knows neither the local address nor the source port: match on the remote side, protocol, port, process or interface",
    ),
    at(9, 2, "pings", cgroup),
    at(9, 2, "pings", "only tcp and udp connections can be redirected"),
    at(12, 3, "udp-header", cgroup),
    at(
      12,
      3,
      "udp-header",
      "proxy_protocol v2 is a header on a tcp stream: the redirect matches udp",
    ),
  ]);
  assert.deepEqual(redirectProblems(parsePolicy(POLICY, "p.yaml")), []);
});

test("a target with no usable route is refused, with the route's answer", () => {
  const model = parsePolicy(POLICY, "p.yaml");
  const answers: Record<string, { type: string } | { error: string }> = {
    "127.0.0.1": { type: "local" },
    "::1": { error: "RTNETLINK answers: Network is unreachable" },
  };
  const found = unreachableTargets(model, null, (ip) => answers[ip] ?? { type: "blackhole" });
  assert.deepEqual(found.map(formatDiagnostic), [
    "p.yaml:11:5 redirect[1]: redirect 'web': [::1]:3129 is not reachable from this host's network namespace (RTNETLINK answers: Network is unreachable)",
  ]);
  answers["::1"] = { type: "blackhole" };
  assert.match(
    formatDiagnostic(unreachableTargets(model, null, (ip) => answers[ip] ?? { type: "local" })[0]!),
    /\(a blackhole route\)$/,
  );
});

test("the evaluator names the redirect of what the rules let through", () => {
  const model = parsePolicy(POLICY, "p.yaml");
  const judge = (port: number, name?: string) =>
    evaluate(model, {
      direction: "egress",
      family: 4,
      protocol: "tcp",
      local: { ip: "10.0.0.1", port: 40000 },
      remote: { ip: "192.0.2.7", port },
      ...(name
        ? {
            process: {
              pid: 1,
              name,
              path: `/usr/bin/${name}`,
              user: 0,
              cgroup: "/",
              container: null,
            },
          }
        : {}),
    }) as Decision;
  assert.deepEqual(judge(80).redirect, {
    name: "web",
    to: "[::1]:3129",
    proxyProtocol: "v2",
    line: 11,
  });
  assert.match(judge(80).reason, /; redirected to \[::1\]:3129 by redirect web \(line 11\)$/);
  // blocked stays blocked; detected goes through, redirected
  assert.equal(judge(22).verdict, "blocked");
  assert.equal(judge(22).redirect, undefined);
  assert.equal(judge(8443).verdict, "detected");
  assert.equal(judge(8443).redirect?.name, "web");
  // first match wins; without the process, a redirect naming one is only a maybe
  assert.equal(judge(8080, "curl").redirect?.name, "by-curl");
  assert.equal(judge(8080, "wget").redirect?.name, "web");
  assert.equal(judge(8080).redirect, undefined);
  assert.match(
    judge(8080).reason,
    /redirect by-curl \(line 8\) sends it to 127\.0\.0\.1:3128 if process match/,
  );
});
