// An echo server (http-echo.ts) behind moat's HTTP handler on a stand-in relay (l7-http-relay.ts),
// both on loopback: for the tests that check which host a request reaches the server with.
import { httpHandler } from "../../src/l7/http/index.ts";
import type { Upstream } from "./http-echo.ts";
import { startL7Relay, type L7Relay } from "./l7-http-relay.ts";

/** allowed.moat.test, by its Host, is allowed (rule web-allowed); any other HTTP is blocked. */
export const ALLOWED_HOST_POLICY = `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: block, egress: allow }
rules:
  - { name: web-allowed, direction: egress, action: allow, layer7: { http: { host: [allowed.moat.test], trust_host: true } } }
  - { name: other-web, direction: egress, action: block, layer7: { http: {} } }
`;

export interface EchoRelay {
  upstream: Upstream;
  relay: L7Relay;
  /** Closes the relay, then the server. */
  close(): Promise<void>;
}

/** The server `startEcho` starts, behind the HTTP handler judging by ALLOWED_HOST_POLICY. */
export async function startEchoRelay(startEcho: () => Promise<Upstream>): Promise<EchoRelay> {
  const upstream = await startEcho();
  const relay = await startL7Relay(ALLOWED_HOST_POLICY, upstream.port, httpHandler());
  return {
    upstream,
    relay,
    close: async () => {
      await relay.close();
      await upstream.close();
    },
  };
}
