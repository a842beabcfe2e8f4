// How moat connects to the fleet's NATS cluster: the host's nkey (when it has one), an inbox of
// its own (so its permissions can leave other hosts' replies out), reconnecting forever.
import { connect, nkeyAuthenticator, type ConnectionOptions, type NatsConnection } from "nats";
import "./nats-transport.ts";

export interface FleetConnectOptions {
  url: string | string[];
  /** The nkey seed (SU...), or none: the server's own rules apply. */
  seed?: string;
  /** Names the connection and its inbox prefix (`_INBOX_<host>`). */
  host?: string;
  /** Delay between reconnection attempts (default 2 s). */
  reconnectWaitMs?: number;
  /** Keeps trying when the first connection fails (a daemon); a CLI gives up. */
  waitOnFirstConnect?: boolean;
}

/**
 * A `tls://` URL asks for TLS, which the NATS client alone only starts when the server offers it:
 * a server (or someone in the path) that offers none would get the login in plain text. With
 * `tls` set, the client refuses a server without TLS and checks its certificate. One tls:// URL
 * among several asks it of every server.
 */
export function natsTls(url: string | readonly string[]): Pick<ConnectionOptions, "tls"> {
  const urls = typeof url === "string" ? [url] : url;
  return urls.some((u) => u.trim().toLowerCase().startsWith("tls://")) ? { tls: {} } : {};
}

export function connectionOptions(o: FleetConnectOptions): ConnectionOptions {
  return {
    ...natsTls(o.url),
    servers: o.url,
    name: o.host ? `moat ${o.host}` : "moat",
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: o.reconnectWaitMs ?? 2000,
    ...(o.waitOnFirstConnect ? { waitOnFirstConnect: true } : {}),
    ...(o.host ? { inboxPrefix: `_INBOX_${o.host}` } : {}),
    ...(o.seed
      ? { authenticator: nkeyAuthenticator(new TextEncoder().encode(o.seed.trim())) }
      : {}),
  };
}

export function connectFleet(o: FleetConnectOptions): Promise<NatsConnection> {
  return connect(connectionOptions(o));
}
