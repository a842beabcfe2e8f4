// Real DNS clients for the DNS lab (dns-lab.ts), run in a namespace and, when given, a cgroup:
// dig and kdig ask a server named on their command line; curl and python3 resolve the way
// applications do (getaddrinfo through /etc/resolv.conf), with a resolv.conf of the lab
// bind-mounted over /etc/resolv.conf in a mount namespace of the client alone.
import { runIn, type Run } from "./cgroup-run.ts";
import { spawnLines, type LineChild } from "./child.ts";

/** Where a client runs: namespace, and the cgroup directory it joins (null: stays where it is). */
export interface Where {
  ns: string;
  cgroupDir: string | null;
}

/** argv that runs `cmd` with `resolv` as its /etc/resolv.conf (the host's file stays as is). */
export function withResolvConf(resolv: string, cmd: string[]): string[] {
  return [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    `mount --bind "${resolv}" /etc/resolv.conf && exec "$@"`,
    "sh",
    ...cmd,
  ];
}

export interface Lookup extends Run {
  /** The answer's status (NOERROR, REFUSED...), undefined when no answer came. */
  rcode: string | undefined;
  /** A records of the answer section, in order. */
  addresses: string[];
  /** CNAME records of the answer section: "owner -> target". */
  cnames: string[];
  /** dig: the UDP answer was truncated and dig asked again over TCP. */
  retriedOverTcp: boolean;
}

function parseAnswer(r: Run): Lookup {
  const answer = (type: string) =>
    [...r.stdout.matchAll(new RegExp(`^(\\S+)\\.\\s+\\d+\\s+IN\\s+${type}\\s+(\\S+?)\\.?$`, "gm"))]
      .map((m) => [m[1] ?? "", m[2] ?? ""] as const)
      .filter(([owner]) => !owner.startsWith(";"));
  return {
    ...r,
    rcode: /status: ([A-Z]+)/.exec(r.stdout)?.[1],
    addresses: answer("A").map(([, ip]) => ip),
    cnames: answer("CNAME").map(([owner, target]) => `${owner} -> ${target}`),
    retriedOverTcp: /Truncated, retrying in TCP mode/.test(r.stdout),
  };
}

/** dig `name` A at `server`: one try, 2 s. */
export function dig(where: Where, server: string, name: string, extra: string[] = []): Lookup {
  const cmd = ["dig", "+tries=1", "+time=2", ...extra, `@${server}`, name, "A"];
  return parseAnswer(runIn(where.ns, where.cgroupDir, cmd));
}

/** kdig (Knot) `name` A at `server`. */
export function kdig(where: Where, server: string, name: string, extra: string[] = []): Lookup {
  const cmd = ["kdig", "+retry=0", "+time=2", ...extra, `@${server}`, name, "A"];
  return parseAnswer(runIn(where.ns, where.cgroupDir, cmd));
}

/** curl GET `url`, resolving its host through `resolv`; exit 7 = could not connect. */
export function curl(where: Where, resolv: string, url: string, extra: string[] = []): Run {
  const cmd = ["curl", "-sS", "--max-time", "3", ...extra, url];
  return runIn(where.ns, where.cgroupDir, withResolvConf(resolv, cmd));
}

/** curl GET `url` where the host is an address: no lookup at all. */
export function curlByIp(where: Where, url: string): Run {
  return runIn(where.ns, where.cgroupDir, ["curl", "-sS", "--max-time", "3", url]);
}

/**
 * A small client: getaddrinfo (IPv4, as applications call it) then connect(), printing one JSON
 * line per step. Commands:
 *   connect HOST PORT      resolve HOST (or take it as an address), connect to the first address
 *   race FIRST COUNT PORT  for i in FIRST..FIRST+COUNT: resolve r<i>.race.moat.test, connect at
 *                          once, close; prints a summary
 *   hold HOST PORT         connect and keep the connection; on each stdin line "again" connect
 *                          anew to the same address by IP (no lookup); "quit" ends
 *   steps PORT STEP...     L:NAME resolves NAME, C:IP connects to IP (no lookup), in order
 */
const CLIENT = String.raw`
import errno, json, socket, sys, time

def attempt(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((addr, port))
        return s, "connected"
    except OSError as e:
        s.close()
        return None, "timeout" if isinstance(e, socket.timeout) else errno.errorcode.get(e.errno, str(e))

def resolve(host, port):
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
        return [i[4][0] for i in infos], None
    except socket.gaierror as e:
        return [], str(e)

def out(**kv):
    print(json.dumps(kv), flush=True)

cmd = sys.argv[1]
if cmd == "connect":
    host, port = sys.argv[2], int(sys.argv[3])
    addrs, err = resolve(host, port)
    if err:
        out(result="unresolved", error=err)
    else:
        s, result = attempt(addrs[0], port)
        out(result=result, addr=addrs[0], addrs=addrs)
        if s: s.close()
elif cmd == "race":
    first, count, port = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    failed, t0 = [], time.monotonic()
    for i in range(first, first + count):
        name = "r%d.race.moat.test" % i
        addrs, err = resolve(name, port)
        if err:
            failed.append({"name": name, "error": err})
            continue
        s, result = attempt(addrs[0], port)
        if s: s.close()
        if result != "connected":
            failed.append({"name": name, "addr": addrs[0], "error": result})
    out(done=count, failed=failed, ms=round((time.monotonic() - t0) * 1000))
elif cmd == "steps":
    port = int(sys.argv[2])
    for step in sys.argv[3:]:
        kind, arg = step.split(":", 1)
        if kind == "L":
            addrs, err = resolve(arg, port)
            out(step=step, ok=err is None, addrs=addrs)
        else:
            s, result = attempt(arg, port)
            if s: s.close()
            out(step=step, result=result)
elif cmd == "hold":
    host, port = sys.argv[2], int(sys.argv[3])
    addrs, err = resolve(host, port)
    if err:
        out(result="unresolved", error=err)
        sys.exit(1)
    held, result = attempt(addrs[0], port)
    out(result=result, addr=addrs[0])
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        s, result = attempt(addrs[0], port)
        out(result=result, addr=addrs[0])
        if s: s.close()
`;

export interface Connect {
  result: string;
  addr?: string;
  addrs?: string[];
  error?: string;
}

/** python3: getaddrinfo(host) through `resolv`, then connect() to the first address. */
export function pyConnect(where: Where, resolv: string, host: string, port: number): Connect {
  const r = runIn(
    where.ns,
    where.cgroupDir,
    withResolvConf(resolv, ["python3", "-c", CLIENT, "connect", host, String(port)]),
  );
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (!line.startsWith("{")) return { result: "no output", error: r.stderr };
  return JSON.parse(line) as Connect;
}

export interface StepResult {
  step: string;
  /** L: whether the name resolved, and to what. */
  ok?: boolean;
  addrs?: string[];
  /** C: "connected", "EPERM", ... */
  result?: string;
}

/**
 * python3 (/usr/bin/python3, comm "python3") running `steps` in order, one process: "L:NAME"
 * resolves NAME through `resolv`, "C:IP" connects to IP:port without a lookup.
 */
export function pySteps(where: Where, resolv: string, port: number, steps: string[]): StepResult[] {
  const cmd = ["/usr/bin/python3", "-c", CLIENT, "steps", String(port), ...steps];
  const r = runIn(where.ns, where.cgroupDir, withResolvConf(resolv, cmd));
  const lines = r.stdout.split("\n").filter((l) => l.startsWith("{"));
  if (lines.length !== steps.length) throw new Error(`the client failed: ${r.stdout}${r.stderr}`);
  return lines.map((l) => JSON.parse(l) as StepResult);
}

export interface RaceSummary {
  done: number;
  failed: { name: string; addr?: string; error: string }[];
  ms: number;
}

/** `cmd` started in `where` (joining its cgroup first), read line by line. */
function spawnIn(where: Where, cmd: string[]): LineChild {
  const enter = where.cgroupDir ? `echo $$ > ${where.cgroupDir}/cgroup.procs && ` : "";
  return spawnLines("nsenter", [
    `--net=/run/netns/${where.ns}`,
    "sh",
    "-c",
    `${enter}exec "$@"`,
    "sh",
    ...cmd,
  ]);
}

/** python3 resolving r<first>.. r<first+count-1>.race.moat.test, connecting right after each. */
export async function pyRace(
  where: Where,
  resolv: string,
  first: number,
  count: number,
  port: number,
): Promise<RaceSummary> {
  const args = ["race", String(first), String(count), String(port)];
  const child = spawnIn(where, withResolvConf(resolv, ["python3", "-c", CLIENT, ...args]));
  try {
    return JSON.parse(await child.waitFor(/^\{/, 120_000)) as RaceSummary;
  } finally {
    child.kill("SIGKILL");
  }
}

/**
 * python3 holding a connection to `host` (resolved through `resolv`): `again()` connects anew to
 * the same address by IP from the same process and returns the result.
 */
export interface Holder {
  first: Connect;
  again(): Promise<Connect>;
  close(): void;
}

export async function pyHold(
  where: Where,
  resolv: string,
  host: string,
  port: number,
): Promise<Holder> {
  const args = ["hold", host, String(port)];
  const child = spawnIn(where, withResolvConf(resolv, ["python3", "-c", CLIENT, ...args]));
  const next = async () => JSON.parse(await child.waitFor(/^\{/)) as Connect;
  try {
    const first = await next();
    return {
      first,
      async again() {
        child.send("again");
        return next();
      },
      close: () => child.kill("SIGKILL"),
    };
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
}

/** A loop of dig queries at `server` (load beside a test), until stop(); counts the answers. */
export function digLoop(where: Where, server: string, names: string[]): { stop(): number } {
  const loop = `while :; do for n in ${names.join(" ")}; do dig +tries=1 +time=1 +short @${server} $n A; done; done`;
  const child = spawnIn(where, ["sh", "-c", loop]);
  return {
    stop() {
      child.kill("SIGKILL");
      return child.lines.filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l)).length;
    },
  };
}
