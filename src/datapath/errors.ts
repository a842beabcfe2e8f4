import type { NativeErrorFields } from "./native.d.ts";

/** The one error class the native addon throws: a stable `code`, the `errno`, libbpf's message. */
export class NativeError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly op: string;
  readonly log: string | undefined;

  constructor(message: string, fields: NativeErrorFields) {
    super(message);
    this.name = "NativeError";
    this.code = fields.code;
    this.errno = fields.errno;
    this.op = fields.op;
    this.log = fields.log;
  }
}
