// Opens N TCP connections to HOST:PORT that never send a byte; prints "open N" once every one
// connected (or failed), then "closed K" each time the server closes one. Used to play a hostile
// local user (run as nobody) against the API.
import { connect } from "node:net";

const [host = "127.0.0.1", portText = "0", countText = "900"] = process.argv.slice(2);
const count = Number(countText);
let settled = 0;
let closed = 0;
let failed = 0;
const settle = () => {
  if (++settled === count) console.log(`open ${count - failed}`);
};
for (let i = 0; i < count; i++) {
  const socket = connect(Number(portText), host);
  let connected = false;
  socket.once("connect", () => {
    connected = true;
    settle();
  });
  socket.once("error", () => {
    if (!connected) {
      failed++;
      settle();
    }
  });
  socket.once("close", () => {
    if (!connected) return;
    closed++;
    console.log(`closed ${closed}`);
  });
}
setInterval(() => {}, 60_000);
