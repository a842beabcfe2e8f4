// The policy of tests about one address set's entries (a dynamic set, a URL feed, a CrowdSec
// bouncer's set): everything passes but what comes in from the set.
import type { Lab } from "./netns.ts";

/**
 * For startMoatLab: on b's interface, with the audit log, set `name` declared as `declaration`
 * (YAML, one line) and rule `rule` blocking what comes in from it.
 */
export const setBlockPolicy =
  (name: string, declaration: string, rule = name) =>
  (l: Lab & { auditPath: string }): string => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}] }
logging: { audit: { path: ${l.auditPath} } }
sets:
  ${name}: ${declaration}
rules:
  - name: ${rule}
    direction: ingress
    action: block
    layer3: { remote: [set:${name}] }
`;
