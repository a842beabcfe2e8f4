// moat ssh-authkeys: sshd's AuthorizedKeysCommand. Prints the client keys the running policy
// allows for a login (user, client address, sshd's address: given, or read from the parent sshd's
// connection when only USER is) as authorized_keys lines; the daemon
// reports each decision as an event. Fails closed: when the daemon is not there (its socket
// missing or refusing connections), it prints nothing and exits 1, unless the break-glass file
// (root-only, read only then) holds keys for the user; any other failure (an error answer, a
// dropped or stalled connection, which a local user flooding the API could cause) prints nothing.
import { isIP } from "node:net";
import type { Command, Io, OptionValues } from "../command.ts";
import { UsageError } from "../command.ts";
import { BREAK_GLASS_FILE, breakGlassKeys, sshdPeer } from "../../sshd/index.ts";
import { API_OPTIONS, API_USAGE, ApiClientError, apiTarget, call } from "../api/client.ts";

interface SshKeysAnswer {
  generation: number;
  keys: string[];
}

/** Transport errors that say no daemon listens (stopped, not started): break-glass applies. */
const DAEMON_ABSENT = new Set(["ENOENT", "ECONNREFUSED"]);

const USAGE = `moat ssh-authkeys USER [CLIENT_ADDR [CLIENT_PORT SERVER_ADDR SERVER_PORT]] [--key-type TYPE --key BASE64] [--break-glass FILE] ${API_USAGE}`;

/** The connection of the sshd that runs this command (its parent), as positionals. */
function parentConnection(): string[] {
  let peer: ReturnType<typeof sshdPeer> = null;
  try {
    peer = sshdPeer(process.ppid);
  } catch {
    // not readable: refused below
  }
  if (!peer)
    throw new UsageError(
      `no CLIENT_ADDR given and the parent process (pid ${process.ppid}) serves no single TCP connection; no key printed`,
      1,
    );
  return [peer.client.ip, String(peer.client.port), peer.server.ip, String(peer.server.port)];
}

function query(positionals: string[], values: OptionValues): URLSearchParams {
  const [user, client, clientPort, server, serverPort, ...extra] = positionals;
  if (!user || !client || extra.length > 0 || (server !== undefined && serverPort === undefined))
    throw new UsageError(
      `give USER [CLIENT_ADDR [CLIENT_PORT SERVER_ADDR SERVER_PORT]]\nusage: ${USAGE}`,
    );
  if (isIP(client) === 0) throw new UsageError(`'${client}' is not an IP address`);
  const q = new URLSearchParams({ user, client });
  if (clientPort !== undefined) q.set("client_port", clientPort);
  if (server !== undefined && serverPort !== undefined) {
    q.set("server", server);
    q.set("server_port", serverPort);
  }
  const type = values["key-type"];
  const key = values.key;
  if ((typeof type === "string") !== (typeof key === "string"))
    throw new UsageError("give --key-type and --key together (sshd's %t and %k)");
  if (typeof type === "string" && typeof key === "string") q.set("key", `${type} ${key}`);
  return q;
}

/** The break-glass keys for `user`; none (and why, on stderr) when the file is not usable. */
function breakGlass(path: string, user: string, io: Io): string[] {
  try {
    return breakGlassKeys(path, user);
  } catch (err) {
    io.err(`moat ssh-authkeys: no break-glass keys: ${(err as Error).message}`);
    return [];
  }
}

export const sshAuthkeysCommand: Command = {
  name: "ssh-authkeys",
  summary:
    "for sshd's AuthorizedKeysCommand: print the client keys the running policy allows for a login",
  usage: USAGE,
  options: {
    ...API_OPTIONS,
    key: { type: "string" },
    "key-type": { type: "string" },
    "break-glass": { type: "string" },
  },
  async run({ values, positionals }, io) {
    const given = positionals.length === 1 ? [...positionals, ...parentConnection()] : positionals;
    const q = query(given, values);
    const user = q.get("user") ?? "";
    let answer: SshKeysAnswer;
    try {
      answer = await call<SshKeysAnswer>(apiTarget(values), "GET", `/v1/ssh/authorized-keys?${q}`);
    } catch (err) {
      if (!(err instanceof ApiClientError)) throw err;
      if (err.status !== 0) {
        io.err(`moat ssh-authkeys: the daemon refused: ${err.message}; no key printed`);
        return 1;
      }
      if (!DAEMON_ABSENT.has(err.code)) {
        io.err(`moat ssh-authkeys: ${err.message}; no key printed`);
        return 1;
      }
      const path =
        typeof values["break-glass"] === "string" ? values["break-glass"] : BREAK_GLASS_FILE;
      const keys = breakGlass(path, user, io);
      io.err(
        `moat ssh-authkeys: ${err.message}; ${keys.length} break-glass key(s) for ${user} from ${path}`,
      );
      for (const k of keys) io.out(k);
      return keys.length > 0 ? 0 : 1;
    }
    for (const k of answer.keys) io.out(k);
    return 0;
  },
};
