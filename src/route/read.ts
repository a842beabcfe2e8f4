// One read of a namespace's links, main/local routes and rules through `ip -j`.
import { buildImage, type BuiltImage, type NamespaceDump } from "./build-image.ts";
import { execFileSync } from "node:child_process";
import { ipArgv, runIp, type NamespaceOptions } from "./ip-command.ts";
import { parseLinks, parseRoutes, parseRules } from "./ip-json.ts";

export async function readNamespace(ns: NamespaceOptions): Promise<NamespaceDump> {
  // links first: a route read afterwards can only name links that exist in this list or newer
  // ones, and a newer one also fires the monitor, so the next read catches it
  const links = parseLinks(await runIp(ns, ["-j", "-d", "link", "show"]));
  const [main4, main6, local4, local6, rules4, rules6] = await Promise.all([
    runIp(ns, ["-j", "-4", "route", "show", "table", "main"]).then(parseRoutes),
    runIp(ns, ["-j", "-6", "route", "show", "table", "main"]).then(parseRoutes),
    runIp(ns, ["-j", "-4", "route", "show", "table", "local"]).then(parseRoutes),
    runIp(ns, ["-j", "-6", "route", "show", "table", "local"]).then(parseRoutes),
    runIp(ns, ["-j", "-4", "rule", "show"]).then(parseRules),
    runIp(ns, ["-j", "-6", "rule", "show"]).then(parseRules),
  ]);
  return { links, main4, main6, local4, local6, rules4, rules6 };
}

/** Reads the namespace once and builds its image (no monitoring). */
export async function readRouteImage(ns: NamespaceOptions = {}): Promise<BuiltImage> {
  return buildImage(await readNamespace(ns));
}

function runIpSync(ns: NamespaceOptions, args: string[]): string {
  const [cmd = "ip", ...rest] = ipArgv(ns, args);
  return execFileSync(cmd, rest, { encoding: "utf8", timeout: 5_000, maxBuffer: 64 << 20 });
}

/** The same read, synchronously: for a policy compile that needs the routes now. */
export function readRouteImageSync(ns: NamespaceOptions = {}): BuiltImage {
  const links = parseLinks(runIpSync(ns, ["-j", "-d", "link", "show"]));
  const routes = (family: string, table: string) =>
    parseRoutes(runIpSync(ns, ["-j", family, "route", "show", "table", table]));
  return buildImage({
    links,
    main4: routes("-4", "main"),
    main6: routes("-6", "main"),
    local4: routes("-4", "local"),
    local6: routes("-6", "local"),
    rules4: parseRules(runIpSync(ns, ["-j", "-4", "rule", "show"])),
    rules6: parseRules(runIpSync(ns, ["-j", "-6", "rule", "show"])),
  });
}
