// The NATS client (2.x) leaves a socket open when a connection attempt times out before the
// server's INFO: its transport's close returns at once for a connection that never completed. A
// server that accepts and stays silent would cost moat a descriptor at every retry, for good.
// Imported for its effect by every module that connects: such a socket is destroyed at close.
import { NodeTransport } from "nats/lib/src/node_transport.js";

const close = NodeTransport.prototype.close;
NodeTransport.prototype.close = function closeEvenUnconnected(this: NodeTransport, err?: Error) {
  if (!this.connected) this.socket?.destroy();
  return close.call(this, err);
};
