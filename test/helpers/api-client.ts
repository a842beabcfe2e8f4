// Raw HTTP requests to the API for tests: over a unix socket or TCP, with an optional token.
import { request } from "node:http";

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface Where {
  socketPath?: string;
  port?: number;
  token?: string;
  /** More request headers (a console session's cookie and CSRF token). */
  headers?: Record<string, string>;
}

export function http(where: Where, method: string, path: string, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        method,
        path,
        // a fresh connection each time: a kept-alive one may be closed by the server meanwhile
        agent: false,
        ...(where.socketPath
          ? { socketPath: where.socketPath }
          : { host: "127.0.0.1", port: where.port }),
        headers: {
          ...(where.token ? { authorization: `Bearer ${where.token}` } : {}),
          ...where.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** An SSE subscription: collects `data:` events; `opened` resolves once the server said hello. */
export function sse(where: Where, path: string) {
  const events: unknown[] = [];
  let onEvent = () => {};
  let close = () => {};
  let pause = () => {};
  const opened = new Promise<number>((resolve, reject) => {
    const req = request(
      {
        path,
        ...(where.socketPath
          ? { socketPath: where.socketPath }
          : { host: "127.0.0.1", port: where.port }),
        headers: where.token ? { authorization: `Bearer ${where.token}` } : {},
      },
      (res) => {
        pause = () => res.pause();
        let buffer = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffer += chunk;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (block.startsWith(":")) resolve(res.statusCode ?? 0);
            for (const line of block.split("\n"))
              if (line.startsWith("data: ")) events.push(JSON.parse(line.slice(6)) as unknown);
            onEvent();
          }
        });
        if (res.statusCode !== 200) resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", reject);
    close = () => req.destroy();
    req.end();
  });
  return {
    events,
    opened,
    close: () => close(),
    /** Stops reading: the server's socket buffers fill and its writes stall. */
    pause: () => pause(),
    /** Resolves once `n` events arrived (or rejects after `ms`). */
    waitFor(n: number, ms = 5000): Promise<void> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`only ${events.length} of ${n} events arrived`)),
          ms,
        );
        const check = () => {
          if (events.length >= n) {
            clearTimeout(timer);
            resolve();
          }
        };
        onEvent = check;
        check();
      });
    },
  };
}
