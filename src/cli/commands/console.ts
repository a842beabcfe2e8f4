// moat console: a one-time login link for the web console. Over the root-only unix socket the
// daemon opens (or reuses) a loopback listener for it; over a TLS listener the link points there.
// The link works once, within minutes; the browser trades it for a session cookie.
import type { Command } from "../command.ts";
import { UsageError } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, call } from "../api/client.ts";
import { jsonLine } from "../json-line.ts";

interface ConsoleUrl {
  url: string;
  scopes: string[];
  expiresAt: string;
}

export const consoleCommand: Command = {
  name: "console",
  summary: "print a one-time link that opens the web console (live view, playground)",
  usage: `moat console [--scopes read,events,...] [--json] ${API_USAGE}`,
  options: { ...API_OPTIONS, scopes: { type: "string" }, json: { type: "boolean" } },
  async run({ values, positionals }, io) {
    if (positionals.length) throw new UsageError("usage: moat console [--scopes LIST]");
    const scopes = typeof values.scopes === "string" ? values.scopes.split(",") : undefined;
    const r = await call<ConsoleUrl>(
      apiTarget(values),
      "POST",
      "/v1/console/url",
      JSON.stringify(scopes ? { scopes } : {}),
    );
    if (values.json) io.out(jsonLine(r));
    else {
      io.out(`open this link in a browser on this machine (it works once, until ${r.expiresAt}):`);
      io.out(r.url);
      io.out(`the session may: ${r.scopes.join(", ")}`);
    }
    return 0;
  },
};
