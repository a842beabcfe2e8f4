// The connection an sshd process serves, read from /proc: its one established TCP socket. sshd
// runs AuthorizedKeysCommand from the privileged process of the connection, and OpenSSH 9.2 has
// no token for the client's address there, so moat ssh-authkeys asks its parent process.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export interface SshdPeer {
  client: { ip: string; port: number };
  server: { ip: string; port: number };
}

/** "0100007F:0016" (IPv4) or 32 hex digits (IPv6), each 32-bit word in host order (x86: little). */
function procAddress(text: string): { ip: string; port: number } {
  const [hex = "", port = "0"] = text.split(":");
  const words = (hex.match(/.{8}/g) ?? []).map((w) =>
    Buffer.from(w, "hex").reverse().toString("hex"),
  );
  const ip =
    words.length === 1
      ? (words[0]?.match(/../g) ?? []).map((b) => parseInt(b, 16)).join(".")
      : (words.join("").match(/.{4}/g) ?? []).map((g) => g.replace(/^0+(?=.)/, "")).join(":");
  const mapped = /^0:0:0:0:0:ffff:([0-9a-f]+):([0-9a-f]+)$/.exec(ip);
  const v4 = (g: string) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 255].join(".");
  return {
    ip: mapped ? `${v4(mapped[1] ?? "0")}.${v4(mapped[2] ?? "0")}` : ip,
    port: parseInt(port, 16),
  };
}

const ESTABLISHED = "01";

/** The established TCP connection of process `pid`; null if it has none or several. */
export function sshdPeer(pid: number): SshdPeer | null {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1]) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const found: SshdPeer[] = [];
  for (const table of ["tcp", "tcp6"]) {
    let text = "";
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== ESTABLISHED || !inodes.has(f[9] ?? "")) continue;
      found.push({ server: procAddress(f[1] ?? ""), client: procAddress(f[2] ?? "") });
    }
  }
  return found.length === 1 ? (found[0] ?? null) : null;
}
