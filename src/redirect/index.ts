// moat's relay for redirects that want a PROXY header (docs/redirect.md).
export { Relay, type RelayOptions, type RelayTarget } from "./relay.ts";
