// The sockets bound in this network namespace before moat's accept hooks were attached, listed
// by the kernel (sock_diag through the addon): the daemon finds their owners (src/attribution)
// and seeds them by cookie.
import { native } from "./addon.ts";
import type { ListedSocket } from "./native.d.ts";

const TCP_LISTEN = 10;
const TCP_CLOSE = 7; // an unconnected (bound) udp socket

/** This network namespace's listening TCP and bound UDP sockets, IPv4 and IPv6. */
export function boundSockets(): ListedSocket[] {
  const addon = native();
  const out: ListedSocket[] = [];
  for (const family of [4, 6] as const) {
    out.push(...addon.sockList(family, 6, 1 << TCP_LISTEN));
    out.push(...addon.sockList(family, 17, 1 << TCP_CLOSE));
  }
  return out;
}
