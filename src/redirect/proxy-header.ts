// The PROXY protocol header (HAProxy's spec, versions 1 and 2) that moat's relay writes before a
// redirected connection's bytes, so the proxy learns the client and the original destination.
import { isIPv4 } from "node:net";
import { mappedAddress, parseAddress } from "../datapath/address.ts";

export interface ProxiedConnection {
  source: { ip: string; port: number };
  destination: { ip: string; port: number };
}

/** The 12 bytes every version 2 header starts with. */
export const V2_SIGNATURE = Buffer.from("0d0a0d0a000d0a515549540a", "hex");
const V2_PROXY_COMMAND = 0x21; // version 2, PROXY
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;

/** Version 2 (binary): TCP over IPv4 if both ends are IPv4, else IPv6 (IPv4 mapped). */
export function proxyHeaderV2(c: ProxiedConnection): Buffer {
  const v4 = isIPv4(c.source.ip) && isIPv4(c.destination.ip);
  const address = (ip: string) => (v4 ? parseAddress(ip) : mappedAddress(ip));
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(c.source.port, 0);
  ports.writeUInt16BE(c.destination.port, 2);
  const body = Buffer.concat([address(c.source.ip), address(c.destination.ip), ports]);
  const head = Buffer.alloc(4);
  head[0] = V2_PROXY_COMMAND;
  head[1] = v4 ? V2_TCP4 : V2_TCP6;
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, body]);
}

/** Version 1 (text), e.g. "PROXY TCP4 10.0.0.1 192.0.2.7 51000 80\r\n". */
export function proxyHeaderV1(c: ProxiedConnection): Buffer {
  const v4 = isIPv4(c.source.ip) && isIPv4(c.destination.ip);
  const ip = (text: string) => (v4 || !isIPv4(text) ? text : `::ffff:${text}`);
  const family = v4 ? "TCP4" : "TCP6";
  return Buffer.from(
    `PROXY ${family} ${ip(c.source.ip)} ${ip(c.destination.ip)} ${c.source.port} ${c.destination.port}\r\n`,
  );
}

export function proxyHeader(version: "v1" | "v2", c: ProxiedConnection): Buffer {
  return version === "v2" ? proxyHeaderV2(c) : proxyHeaderV1(c);
}
