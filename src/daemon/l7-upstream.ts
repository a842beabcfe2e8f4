// The L7 relay's connections to original destinations (docs/l7.md): each socket is made by the
// addon with its kernel record already carrying the relay's decision, so moat's hooks pass it as
// the relay decided (under `defaults.egress: block` too) and report nothing more; Node connects
// it. Without a datapath (nothing attached) there is no hook to pass: a plain connect.
import { closeSync } from "node:fs";
import { connect, Socket } from "node:net";
import type { Datapath } from "../datapath/index.ts";
import type { UpstreamPurpose } from "../l7/index.ts";

export type UpstreamConnect = (
  to: { ip: string; port: number },
  purpose: UpstreamPurpose,
) => Promise<Socket>;

export function relayedUpstream(
  datapath: () => Pick<Datapath, "relaySocket"> | null,
): UpstreamConnect {
  return (to, purpose) =>
    new Promise<Socket>((resolve, reject) => {
      const dp = datapath();
      let socket: Socket;
      if (!dp) {
        socket = connect({ host: to.ip, port: to.port, noDelay: true });
      } else {
        const fd = dp.relaySocket({
          to,
          rule: purpose.rule,
          verdict: purpose.verdict,
          owner: purpose.owner,
        });
        try {
          socket = new Socket({ fd, readable: true, writable: true });
        } catch (err) {
          closeSync(fd);
          throw err;
        }
        // what the relay writes (a request, a ClientHello) goes out at once
        socket.setNoDelay(true);
        socket.connect({ host: to.ip, port: to.port });
      }
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(socket);
      });
      socket.once("error", reject);
    });
}
