// The user-space half of the post-route check (docs/route-aware.md): the kernel drops the first
// packet of a connection that the real output interface blocks, and reports it; a dropped SYN
// alone would leave connect() retrying for a minute or more, so the daemon destroys the socket
// (SOCK_DESTROY, as `ss -K` does) and connect() fails at once with ECONNABORTED. UDP needs
// nothing: the drop already fails the send() with EPERM.
import { event as eventCodec, EventType, Hook } from "./abi.ts";
import { native } from "./addon.ts";
import type { NativeAddon } from "./native.d.ts";

export interface DestroyedSocket {
  /** The kernel found and destroyed the socket (false: it was gone already). */
  destroyed: boolean;
  /** Why it could not be destroyed (the kernel lacks SOCK_DESTROY, no CAP_NET_ADMIN, ...). */
  error?: Error;
}

/**
 * Destroys the local socket of a post-route blocked TCP event, in this network namespace, by its
 * exact tuple and the interface it left by (a socket bound to a device is found only with it).
 * null when the record is not such an event.
 */
export function destroyBlockedSocket(
  record: Buffer,
  addon: () => Pick<NativeAddon, "sockDestroy"> = native,
): DestroyedSocket | null {
  // every event record passes here: only the three bytes that tell are read before the whole
  const f = eventCodec.fields;
  if (
    record[f.hook.offset] !== Hook.postRoute ||
    record[f.type.offset] !== EventType.blocked ||
    record[f.protocol.offset] !== 6
  )
    return null;
  const e = eventCodec.decode(record);
  try {
    const destroyed = addon().sockDestroy({
      family: e.family === 4 ? 4 : 6,
      protocol: e.protocol,
      local: e.local,
      localPort: e.local_port,
      remote: e.remote,
      remotePort: e.remote_port,
      ifindex: e.ifindex,
    });
    return { destroyed };
  } catch (err) {
    return { destroyed: false, error: err as Error };
  }
}
