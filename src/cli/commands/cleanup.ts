// moat cleanup: removes what a daemon that did not stop cleanly left behind (its pinned links,
// which keep its programs attached, its pinned maps, its API socket). Refuses while a daemon
// that uses the same pin directory runs: that daemon's pins are live, and its stop removes them.
import { lstatSync, readdirSync, rmdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { UsageError, type Command } from "../command.ts";
import { jsonLine } from "../json-line.ts";
import { DEFAULT_SOCKET } from "../api/client.ts";
import { daemonsPinning, PIN_ROOT, removeLeftoverPins } from "../../datapath/index.ts";
import { UnsafeFileError } from "../../host/index.ts";

/** Removes the API socket file and its directory when that is left empty. */
function removeSocket(path: string): boolean {
  try {
    if (!lstatSync(path).isSocket()) return false;
  } catch {
    return false;
  }
  unlinkSync(path);
  try {
    if (readdirSync(dirname(path)).length === 0) rmdirSync(dirname(path));
  } catch {
    // the directory is shared or already gone
  }
  return true;
}

export const cleanupCommand: Command = {
  name: "cleanup",
  summary: "remove what a crashed or killed daemon left: pinned programs, links, maps, socket",
  usage:
    "moat cleanup [--pin-dir DIR] [--api unix:PATH] [--quiet | --json]\n" +
    `  DIR defaults to ${PIN_ROOT}, PATH to ${DEFAULT_SOCKET} (the daemon's defaults).\n` +
    "  Refuses (exit 1) while a daemon pinning in DIR runs; stop that daemon instead.",
  options: {
    "pin-dir": { type: "string" },
    api: { type: "string" },
    quiet: { type: "boolean" },
    json: { type: "boolean" },
  },
  async run({ values }, io) {
    const pinRoot = typeof values["pin-dir"] === "string" ? values["pin-dir"] : PIN_ROOT;
    const api = typeof values.api === "string" ? values.api : `unix:${DEFAULT_SOCKET}`;
    if (!api.startsWith("unix:")) throw new UsageError("--api takes unix:PATH");
    const say = values.quiet || values.json ? () => {} : io.out;
    const running = daemonsPinning(pinRoot);
    if (running.length > 0)
      throw new UsageError(
        `a moat daemon is running with ${pinRoot} (pid ${running.join(", ")}); its pins are ` +
          "live. Stop it instead (systemctl stop moat, or kill -TERM PID): a clean stop detaches " +
          "every program and removes its pins itself.",
        1,
      );
    let left;
    try {
      left = removeLeftoverPins(pinRoot);
    } catch (err) {
      // a pin directory another user could have changed: nothing is removed through it
      if (err instanceof UnsafeFileError)
        throw new UsageError(`${err.message}; nothing removed (remove it by hand)`, 1);
      throw err;
    }
    for (const link of left.links) say(`detached ${link}`);
    if (left.removed) say(`removed ${pinRoot}`);
    const socket = removeSocket(api.slice(5));
    if (socket) say(`removed ${api.slice(5)}`);
    if (!left.removed && !socket) say("nothing to clean up");
    if (values.json)
      io.out(
        jsonLine({
          detached: left.links,
          removed: [...(left.removed ? [pinRoot] : []), ...(socket ? [api.slice(5)] : [])],
        }),
      );
    return 0;
  },
};
