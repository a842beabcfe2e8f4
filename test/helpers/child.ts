// A child process driven line by line: wait for a line matching a pattern, send commands.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface LineChild {
  proc: ChildProcess;
  lines: string[];
  stderr: string[];
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  send(line: string): void;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

export function spawnLines(cmd: string, args: string[]): LineChild {
  const proc = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
  const lines: string[] = [];
  const stderr: string[] = [];
  const waiters: { pattern: RegExp; from: number; resolve: (l: string) => void }[] = [];
  createInterface({ input: proc.stdout! }).on("line", (line) => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.pattern.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  createInterface({ input: proc.stderr! }).on("line", (line) => stderr.push(line));
  const exited = new Promise<number | string>((resolve) =>
    proc.on("exit", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  let cursor = 0;
  return {
    proc,
    lines,
    stderr,
    exited,
    waitFor(pattern, timeoutMs = 15_000) {
      const seen = lines.slice(cursor).find((l) => pattern.test(l));
      if (seen) {
        cursor = lines.indexOf(seen, cursor) + 1;
        return Promise.resolve(seen);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(
            new Error(
              `timed out waiting for ${pattern}; stdout:\n${lines.join("\n")}\nstderr:\n${stderr.join("\n")}`,
            ),
          );
        }, timeoutMs);
        waiters.push({
          pattern,
          from: cursor,
          resolve: (l) => {
            clearTimeout(timer);
            cursor = lines.length;
            resolve(l);
          },
        });
        exited.then(() => {
          clearTimeout(timer);
          reject(
            new Error(
              `process exited waiting for ${pattern}; stdout:\n${lines.join("\n")}\nstderr:\n${stderr.join("\n")}`,
            ),
          );
        });
      });
    },
    send(line) {
      proc.stdin!.write(`${line}\n`);
    },
    kill(signal = "SIGTERM") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
  };
}
