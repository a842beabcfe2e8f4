// What the datapath cannot enforce yet is refused at daemon load, naming the field and its position;
// and the rules with names it cannot enforce as written (hostname entries, layer7.dns), refused by
// the one acceptance path with FILE:LINE:COL and the reason.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  assertSupported,
  DATAPATH_FEATURES,
  formatDiagnostic,
  PolicyError,
  unsupportedFeatures,
} from "../../src/config/index.ts";
import { loadPolicyFile } from "../../src/host/index.ts";
import { acceptPolicy } from "../../src/host/accept-policy.ts";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const FULL = "test/fixtures/policies/full.yaml";

test("every feature of the language is one the datapath enforces, L7 sections included", () => {
  const model = loadPolicyFile(FULL);
  assert.deepEqual(unsupportedFeatures(model, DATAPATH_FEATURES).map(formatDiagnostic), []);
  for (const f of ["layer7.http", "layer7.tls", "layer7.ssh"] as const)
    assert.ok(DATAPATH_FEATURES.has(f), f);
});

test("the caller says what is supported; a feature left out is named at its position", () => {
  const model = loadPolicyFile(FULL);
  const less = new Set([...DATAPATH_FEATURES].filter((f) => !f.startsWith("layer7.")));
  assert.deepEqual(unsupportedFeatures(model, less).map(formatDiagnostic), [
    `${FULL}:58:9 rules[2].layer7.dns: 'layer7.dns' is not supported yet by this version of moat (moat's DNS proxy (names) and ports (over_tls))`,
    `${FULL}:48:9 rules[2].layer7.http: 'layer7.http' is not supported yet by this version of moat (moat's relay (egress, processes under attach.cgroup))`,
    `${FULL}:54:9 rules[2].layer7.tls: 'layer7.tls' is not supported yet by this version of moat (moat's relay (egress, processes under attach.cgroup))`,
    `${FULL}:61:9 rules[2].layer7.ssh: 'layer7.ssh' is not supported yet by this version of moat (moat's relay (egress) and moat ssh-authkeys (ingress))`,
  ]);
  assert.deepEqual(
    unsupportedFeatures(model, new Set(["layer3"]))
      .map((d) => d.path)
      .slice(0, 4),
    ["defaults", "attach.cgroup", "sets.corp", "sets.blocklist"],
  );
});

test("hostnames, in lists and in sets, and layer7.dns are supported features", () => {
  const model = loadPolicyFile("test/fixtures/policies/hostname-set.yaml");
  assert.deepEqual(unsupportedFeatures(model, DATAPATH_FEATURES), []);
  assert.ok(DATAPATH_FEATURES.has("layer3.hostnames") && DATAPATH_FEATURES.has("layer7.dns"));
});

test("assertSupported throws a PolicyError listing them; examples pass it", () => {
  const noL7 = new Set([...DATAPATH_FEATURES].filter((f) => !f.startsWith("layer7.")));
  assert.throws(
    () => assertSupported(loadPolicyFile(FULL), noL7),
    (err: unknown) => err instanceof PolicyError && err.diagnostics.length === 4,
  );
  for (const name of ["default", "server", "workstation"])
    assertSupported(loadPolicyFile(`examples/${name}.yaml`), DATAPATH_FEATURES);
});

function accepted(text: string, files: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "moat-names-"));
  try {
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    const path = join(dir, "p.yaml");
    writeFileSync(path, text);
    const r = acceptPolicy(text, path);
    return r.diagnostics.map((d) => formatDiagnostic(d).replace(`${dir}/`, ""));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const NAMES_HEAD = "version: 1\nmode: prevent\nattach: { cgroup: / }\n";

test("rules with names moat cannot enforce as written are refused, each where it is written", () => {
  const lines = accepted(
    NAMES_HEAD +
      `sets:
  apis: [203.0.113.10, api.example.com]
  nots: ["!203.0.113.0/24"]
  filed: { file: names.txt }
rules:
  - { name: inbound, direction: ingress, action: allow, layer3: { remote: ["*.example.org"] } }
  - { name: both-ways, direction: any, action: allow, layer3: { remote: [set:apis] } }
  - { name: not-name, direction: egress, action: allow, layer3: { remote: ["!ads.example.org"] } }
  - { name: not-set, direction: egress, action: allow, layer3: { remote: ["!set:filed"] } }
  - { name: mixed, direction: egress, action: allow, layer3: { remote: [api.example.org, "!10.0.0.0/8"] } }
  - { name: mixed-set, direction: egress, action: allow, layer3: { remote: [api.example.org, set:nots] } }
  - { name: icmp-name, direction: egress, action: allow, layer3: { remote: [api.example.org] }, layer4: { protocol: icmp } }
  - { name: dns-in, direction: ingress, action: allow, layer7: { dns: { over_tls: false } } }
  - { name: dot-names, direction: egress, action: allow, layer7: { dns: { name: [example.org], over_tls: true } } }
  - { name: web, direction: egress, action: allow, layer7: { http: { host: [example.org] }, tls: { sni: [example.org] }, ssh: { version: ["SSH-2.0-*"] } } }
  - { name: local-name, direction: egress, action: allow, layer3: { local: [set:filed] } }
redirect:
  - { name: proxy, match: { direction: egress, layer3: { remote: [api.example.org, set:apis] } }, to: "127.0.0.1:3128" }
`,
    { "names.txt": "# names\nsecret.example.org\n" },
  );
  const not =
    "moat cannot exclude by name (a name's addresses are known only to the processes that looked it up); put a rule for the name above this one instead";
  const apart =
    "names and addresses are matched apart, so a list with names cannot have '!' entries; write the names and the addresses in rules of their own";
  const ingress =
    "in a rule that is not 'direction: egress': names are learned from this host's own lookups, for the connections it opens";
  assert.deepEqual(lines, [
    `p.yaml:9:76 rules[0].layer3.remote[0]: rule 'inbound': hostname '*.example.org' ${ingress}`,
    `p.yaml:10:74 rules[1].layer3.remote[0]: rule 'both-ways': 'set:apis' (a set with hostnames) ${ingress}`,
    `p.yaml:11:76 rules[2].layer3.remote[0]: rule 'not-name': '!ads.example.org' excludes a hostname: ${not}`,
    // a set file's lines are never quoted: the set is named by its reference
    `p.yaml:12:75 rules[3].layer3.remote[0]: rule 'not-set': '!set:filed' excludes a set with hostnames: ${not}`,
    `p.yaml:13:72 rules[4].layer3.remote: rule 'mixed': this list has hostname 'api.example.org' and exclusion '!10.0.0.0/8': ${apart}`,
    `p.yaml:14:76 rules[5].layer3.remote: rule 'mixed-set': this list has hostname 'api.example.org' and exclusion 'set:nots' (a set with '!' entries): ${apart}`,
    "p.yaml:15:76 rules[6].layer3.remote: rule 'icmp-name': hostname entries with protocol icmp: names are matched by the socket hooks, which see TCP and UDP only",
    "p.yaml:16:71 rules[7].layer7.dns: rule 'dns-in': layer7.dns judges the DNS queries this host sends: use 'direction: egress'",
    "p.yaml:17:73 rules[8].layer7.dns: rule 'dot-names': 'name' with 'over_tls: true': moat cannot see the names inside DNS over TLS; write a rule for DNS over TLS without 'name' (or by its server, in layer3.remote)",
    "p.yaml:19:77 rules[10].layer3.local[0]: rule 'local-name': 'set:filed' (a set with hostnames) in layer3.local: names are learned for the addresses this host connects to; write them in layer3.remote",
    "p.yaml:21:67 redirect[0].match.layer3.remote[0]: redirect 'proxy': hostname 'api.example.org': redirects match addresses, not names (hostname entries are for egress rules)",
    "p.yaml:21:84 redirect[0].match.layer3.remote[1]: redirect 'proxy': 'set:apis' (a set with hostnames): redirects match addresses, not names (hostname entries are for egress rules)",
  ]);
});

test("names need attach.cgroup, as process rules do: the socket hooks see the lookups", () => {
  assert.deepEqual(
    accepted(`version: 1
mode: prevent
rules:
  - { name: api, direction: egress, action: allow, layer3: { remote: [api.example.org] } }
  - { name: queries, direction: egress, action: allow, layer7: { dns: { name: ["**.example.org"] } } }
  - { name: dot, direction: egress, action: allow, layer7: { dns: { over_tls: true } } }
`),
    [
      "p.yaml:4:70 rules[0].layer3.remote: rule 'api': hostname entries match the addresses a process looked up: set attach.cgroup (e.g. \"/\") so the socket hooks see its lookups and connections",
      "p.yaml:5:71 rules[1].layer7.dns: rule 'queries': layer7.dns.name is judged by moat's DNS proxy, for processes under attach.cgroup: set attach.cgroup (e.g. \"/\")",
    ],
  );
});

test("a rule with names after one that needs the client port is refused, as a process rule is", () => {
  assert.deepEqual(
    accepted(
      NAMES_HEAD +
        `rules:
  - { name: high-ports, direction: egress, action: allow, layer4: { protocol: tcp, source_port: ["50000-60000"] } }
  - { name: api, direction: egress, action: allow, layer3: { remote: [api.example.org] } }
  - { name: queries, direction: egress, action: allow, layer7: { dns: { name: ["**.example.org"] } } }
`,
    ),
    [
      "p.yaml:6:70 rules[1].layer3.remote: rule 'api' names hosts after rule 'high-ports' (line 5), which needs the local address or source port: connect() knows neither, so move it above",
      "p.yaml:7:71 rules[2].layer7.dns: rule 'queries' names hosts after rule 'high-ports' (line 5), which needs the local address or source port: connect() knows neither, so move it above",
    ],
  );
});

test("a block rule by name is accepted with a warning saying what it cannot block", () => {
  const lines = accepted(
    NAMES_HEAD +
      `rules:
  - { name: no-ads, direction: egress, action: block, layer3: { remote: ["**.ads.example"] } }
  - { name: no-ads-lookups, direction: egress, action: block, layer7: { dns: { name: ["**.ads.example"] } } }
`,
  );
  assert.deepEqual(
    lines.filter((l) => !l.includes("(policy)")),
    [
      "p.yaml:5:73 rules[0].layer3.remote: warning: rule 'no-ads' blocks by name: it blocks only the addresses a DNS answer gave to the same process (executable, user, cgroup); an address reached without that lookup (written in a program, cached, looked up by another process) is not blocked; to refuse the lookup itself, use layer7: { dns: { name: [...] } }",
    ],
  );
});

const EVERY_FORM =
  NAMES_HEAD +
  `sets:
  apis: [203.0.113.10, api.example.com]
  filed: { file: names.txt }
rules:
  - { name: apis, direction: egress, action: allow, layer3: { remote: [set:apis, set:filed, "*.cdn.example", 198.51.100.0/24] } }
  - { name: queries, direction: egress, action: allow, layer7: { dns: { name: ["**.example.org"], over_tls: false } } }
  - { name: dot, direction: egress, action: block, layer7: { dns: { over_tls: true } } }
`;
const EVERY_FORM_FILES = { "names.txt": "bücher.example\n**.internal.example\n" };

test("every form of a name the language allows passes the checks: lists, inline sets, set files, layer7.dns", () => {
  // what is left is the compiler's to say (the names image, src/policy/compile)
  const lines = accepted(EVERY_FORM, EVERY_FORM_FILES);
  assert.deepEqual(
    lines.filter((l) => !l.includes(" (policy): ")),
    [],
  );
});

test("every form of a name the language allows is accepted: lists, inline sets, set files, layer7.dns", () => {
  assert.deepEqual(accepted(EVERY_FORM, EVERY_FORM_FILES), []);
});

test("a rule with names cannot also need the local address or source port: connect() knows neither", () => {
  assert.deepEqual(
    accepted(
      NAMES_HEAD +
        `rules:
  - { name: api, direction: egress, action: allow, layer3: { remote: [api.example.org], local: [10.0.0.5] } }
  - { name: queries, direction: egress, action: allow, layer4: { protocol: udp, source_port: ["1024-65535"] }, layer7: { dns: { name: [x.example] } } }
  - { name: none, direction: egress, action: allow, layer7: { dns: { name: [] } } }
`,
    ).filter((l) => !l.includes("(policy)")),
    [
      "p.yaml:5:96 rules[0].layer3.local: rule 'api' names hosts and needs the local address: names are judged at connect(), which knows neither the local address nor the source port; leave 'local' out of this rule",
      "p.yaml:6:64 rules[1].layer4: rule 'queries' names hosts and needs the source port: names are judged at connect(), which knows neither the local address nor the source port; leave 'source_port' out of this rule",
      // the rules above need what connect() does not know: this one is below them
      "p.yaml:7:68 rules[2].layer7.dns: rule 'none' names hosts after rule 'api' (line 5), which needs the local address or source port: connect() knows neither, so move it above",
      "p.yaml:7:76 rules[2].layer7.dns.name: warning: an empty list matches nothing, so this rule never matches (leave 'name' out to match any)",
    ],
  );
});

test("a set holding a '!' hostname is refused where a rule names it", () => {
  assert.deepEqual(
    accepted(
      NAMES_HEAD +
        `sets:
  odd: [api.example.org, "!ads.example.org"]
rules:
  - { name: odd, direction: egress, action: allow, layer3: { remote: [set:odd] } }
`,
    ),
    [
      "p.yaml:7:71 rules[0].layer3.remote[0]: rule 'odd': 'set:odd' names a set with '!' hostnames: moat cannot exclude by name (a name's addresses are known only to the processes that looked it up); put a rule for the name above this one instead",
    ],
  );
});
