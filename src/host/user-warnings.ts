// Warnings only this host can give about a policy's process rules: user names its /etc/passwd
// does not know.
import { diagnostic, plainPos, type Diagnostic, type PolicyModel } from "../config/index.ts";
import { UserTable } from "../attribution/users.ts";
import { splitUsers } from "../policy/index.ts";

/**
 * User names /etc/passwd does not know: the rule matches no process of theirs until the user is
 * added (moat reads the file again while it runs). A warning, since the user may come later.
 */
export function unknownUserWarnings(model: PolicyModel, users = new UserTable()): Diagnostic[] {
  const out: Diagnostic[] = [];
  const sections = [...model.rules, ...model.redirects].map((r) => r.process);
  for (const p of sections) {
    if (!p?.user) continue;
    for (const name of splitUsers(p.user).names) {
      if (users.uidOf(name) !== undefined) continue;
      out.push(
        diagnostic(
          { ...plainPos(p.pos), path: `${p.pos.path}.user` },
          `user '${name}' is not in ${users.file}: the rule matches no process of that user until it is added`,
          "warning",
        ),
      );
    }
  }
  return out;
}
