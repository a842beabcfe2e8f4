// A policy -> what the kernel loads: the packet hooks' tables and, when rules name processes, the
// socket hooks' own tables plus the process classes (docs/socket-hooks.md).
//
// Packet hooks never know the process (nor judge by interface), so for them a process or
// interface rule matches nothing. The socket hooks know both but not the client port (connect()
// runs before it is chosen), so for them such a rule's client ports become the classes it matches
// (compile/process.ts): the kernel passes the caller's class where a packet's client port would
// go. Rule indexes are the same in both.

import { judgedBasics } from "../network-basics.ts";
import type { AddressList, Layer4, PolicyModel, Rule, SourcePos } from "../../config/model.ts";
import { compile, firstIngressRule, type CompileOptions } from "./compile.ts";
import type { PolicyImage } from "./kernel-image.ts";
import { ANY_PROCESS_CLASS, compileProcess, socketRule, type ProcessUniverse } from "./process.ts";
import { redirectModel, redirectTargets, withRedirects } from "./redirect.ts";

/** Everything minus everything: an address list no address is in. */
function nothing(pos: SourcePos): AddressList {
  const entry = (family: 4 | 6, end: bigint) => ({
    kind: "interval" as const,
    text: "!*",
    negate: true,
    pos,
    family,
    start: 0n,
    end,
  });
  return { entries: [entry(4, (1n << 32n) - 1n), entry(6, (1n << 128n) - 1n)], pos };
}

/** The rule without its process and interface sections (the tables carry them another way). */
function withoutProcess(r: Rule): Rule {
  const out = { ...r };
  delete out.process;
  delete out.interface;
  return out;
}

const unmatchable = (r: Rule): Rule => ({
  ...withoutProcess(r),
  layer3: { remote: nothing(r.pos), pos: r.pos },
});

/** The rules as the packet hooks judge them. */
export function packetModel(model: PolicyModel): PolicyModel {
  if (!model.rules.some(socketRule)) return model;
  return { ...model, rules: model.rules.map((r) => (socketRule(r) ? unmatchable(r) : r)) };
}

/** Runs of consecutive class numbers as client-port ranges. */
function asPorts(classes: number[], pos: SourcePos): NonNullable<Layer4["sourcePorts"]> {
  const out: NonNullable<Layer4["sourcePorts"]> = [];
  for (const c of classes) {
    const last = out.at(-1);
    if (last && last.hi === c - 1) last.hi = c;
    else out.push({ lo: c, hi: c, text: `process class ${c}`, pos });
  }
  return out;
}

/** The rules as the socket hooks judge them: the process class in the client-port slot. */
function socketModel(model: PolicyModel, classesOf: Map<number, number[]>): PolicyModel {
  const rules = model.rules.map((r): Rule => {
    // a client port is unknown at connect(): decisions that need one wait for the packet hooks
    if (!socketRule(r) && !r.layer4?.sourcePorts) return r;
    const layer4: Layer4 = { ...(r.layer4 ?? { protocol: null, pos: r.pos }) };
    delete layer4.sourcePorts;
    if (!socketRule(r)) return { ...r, layer4 };
    const classes = [...(classesOf.get(r.index) ?? [])];
    // docs/socket-hooks.md, "The accept side": XDP's "may a process rule decide?"
    if (r.process) classes.push(ANY_PROCESS_CLASS);
    if (classes.length === 0) return unmatchable(r);
    return { ...withoutProcess(r), layer4: { ...layer4, sourcePorts: asPorts(classes, r.pos) } };
  });
  return { ...model, rules };
}

/** Whether rules or redirects name processes or interfaces (then a universe is needed). */
export function namesProcesses(model: PolicyModel): boolean {
  return withRedirects(model).rules.some(socketRule);
}

/**
 * The kernel image of a policy. `universe` (what is on this host) is needed only when rules or
 * redirects name processes; without it they match nothing anywhere.
 */
export function compilePolicy(
  model: PolicyModel,
  universe: ProcessUniverse | null,
  options: CompileOptions = {},
): PolicyImage {
  const image: PolicyImage = {
    packet: {
      ...compile(packetModel(model), options),
      // the accept side (docs/socket-hooks.md): from the model as written, process sections and
      // all
      firstIngressProcessRule: firstIngressRule(model, (r) => !!r.process),
      firstIngressSportRule: firstIngressRule(model, (r) => !!r.layer4?.sourcePorts),
      // basic networking named by the rules as written (the packet model rewrites source ports)
      basicsJudged: judgedBasics(model),
    },
  };
  // one set of process classes for the rules and the redirects (compile/redirect.ts)
  const proc = universe ? compileProcess(withRedirects(model), universe) : null;
  if (proc) {
    image.socket = {
      image: compile(socketModel(model, proc.classesOf), options),
      process: proc,
    };
  }
  if (model.redirects.length > 0) {
    image.redirect = {
      image: compile(socketModel(redirectModel(model), proc?.classesOf ?? new Map()), options),
      targets: redirectTargets(model),
    };
  }
  return image;
}
