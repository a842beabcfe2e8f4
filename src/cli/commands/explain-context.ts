// `moat explain --process ... --interface ... --tunnel`: the socket-hook and route facts, added to
// the connection. User names and uids are completed from this host's /etc/passwd, as the daemon's
// attribution would see them.

import { UsageError, type OptionValues } from "../command.ts";
import { UserTable } from "../../attribution/index.ts";
import { type ConnectionFacts, parseProcessText } from "../../policy/index.ts";

export function addContext(facts: ConnectionFacts, values: OptionValues, passwd?: string): void {
  const texts = values.process;
  if (Array.isArray(texts) && texts.length === 1 && texts[0] === "none") {
    // a packet the host forwards: no process rule matches it
    facts.process = null;
  } else if (Array.isArray(texts) && texts.length > 0) {
    const parsed = parseProcessText(texts);
    if (!parsed.ok) throw new UsageError(parsed.error);
    const p = parsed.value;
    const users = new UserTable(passwd);
    if (p.user !== undefined) p.userName = users.nameOf(p.user);
    else if (typeof p.userName === "string") {
      const uid = users.uidOf(p.userName);
      if (uid !== undefined) p.user = uid;
    }
    facts.process = p;
  }
  if (values.tunnel && values["no-tunnel"])
    throw new UsageError("--tunnel and --no-tunnel contradict each other");
  const name = values.interface;
  if (typeof name === "string") {
    if (name === "") throw new UsageError("--interface needs a name");
    facts.interface = { name, tunnel: values.tunnel === true };
  } else if (values.tunnel || values["no-tunnel"]) {
    // the route's kind is known but not its interface
    facts.interface = { tunnel: values.tunnel === true };
  }
}
