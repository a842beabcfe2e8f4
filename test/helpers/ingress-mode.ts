// The attach.interfaces entry an e2e policy writes for the interface it guards. By default a
// plain name (moat chooses the ingress hook: tc on the lab's veths); MOAT_TEST_INGRESS=xdp|tc|auto
// forces one, so the same tests can run through either hook (`make test` runs a core set twice).
const HOOKS = ["auto", "xdp", "tc"] as const;
type IngressHook = (typeof HOOKS)[number];

/** The ingress hook the environment forces on e2e policies, if any. */
export function forcedIngress(): IngressHook | undefined {
  const want = process.env.MOAT_TEST_INGRESS;
  if (!want) return undefined;
  if (!(HOOKS as readonly string[]).includes(want))
    throw new Error(`MOAT_TEST_INGRESS must be one of ${HOOKS.join(", ")}, got '${want}'`);
  return want as IngressHook;
}

/**
 * A YAML flow entry of attach.interfaces for `name`: the hook `ingress` says (tests whose meaning
 * needs one), else the one MOAT_TEST_INGRESS forces, else the plain name.
 */
export function guardedInterface(name: string, ingress = forcedIngress()): string {
  return ingress ? `{ name: ${name}, ingress: ${ingress} }` : name;
}
