// uid <-> user name from /etc/passwd (no NSS, no native code): re-read when the file changes.
// Users only in LDAP/SSSD are not seen; their events carry the uid with userName null.

import { readFileSync, statSync } from "node:fs";

export class UserTable {
  readonly file: string;
  #mtimeMs = -1;
  #names = new Map<number, string>();
  #uids = new Map<string, number>();
  #homes = new Set<string>();

  constructor(file = "/etc/passwd") {
    this.file = file;
  }

  /** The uid's name; null if /etc/passwd has no entry for it. */
  nameOf(uid: number): string | null {
    this.#refresh();
    return this.#names.get(uid) ?? null;
  }

  uidOf(name: string): number | undefined {
    this.#refresh();
    return this.#uids.get(name);
  }

  /** Home directories of every user (rootless container storage lives there). */
  homes(): string[] {
    this.#refresh();
    return [...this.#homes];
  }

  #refresh(): void {
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.file).mtimeMs;
    } catch {
      mtimeMs = 0;
    }
    if (mtimeMs === this.#mtimeMs) return;
    this.#mtimeMs = mtimeMs;
    this.#names.clear();
    this.#uids.clear();
    this.#homes.clear();
    let text = "";
    try {
      text = readFileSync(this.file, "utf8");
    } catch {
      return;
    }
    for (const line of text.split("\n")) {
      // name:password:uid:gid:gecos:home:shell
      const [name, , uidText, , , home] = line.split(":");
      if (!name || !uidText || !/^\d+$/.test(uidText)) continue;
      const uid = Number(uidText);
      // the first entry for a uid wins, as getpwuid() does
      if (!this.#names.has(uid)) this.#names.set(uid, name);
      if (!this.#uids.has(name)) this.#uids.set(name, uid);
      if (home && home !== "/" && home.startsWith("/")) this.#homes.add(home);
    }
  }
}
