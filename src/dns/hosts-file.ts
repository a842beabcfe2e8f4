// /etc/hosts as bindings every identity shares: libc reads the file without a DNS packet, so
// its names hold for every process (read at start and on reload).
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { dnsName } from "./dns-name.ts";

export const HOSTS_FILE = "/etc/hosts";

/** name -> addresses of a hosts-file text (comments and malformed lines skipped). */
export function parseHosts(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const [ip, ...names] = line.replace(/#.*$/, "").trim().split(/\s+/);
    const plain = ip?.replace(/%.*$/, "");
    if (!plain || isIP(plain) === 0) continue;
    for (const raw of names) {
      const name = dnsName(raw);
      if (!name) continue;
      const list = out.get(name) ?? [];
      if (!list.includes(plain)) list.push(plain);
      out.set(name, list);
    }
  }
  return out;
}

/** The hosts file's entries; an unreadable file has none. */
export function readHosts(path: string = HOSTS_FILE): Map<string, string[]> {
  try {
    return parseHosts(readFileSync(path, "utf8"));
  } catch {
    return new Map();
  }
}
