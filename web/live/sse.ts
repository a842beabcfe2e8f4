// Server-Sent Events read from a fetch() body: the live view reads its flow stream this way, not
// with EventSource, because EventSource sends no headers and the request must carry the
// session's token (a token in the URL would reach logs and history).

/** Reads an SSE body to its end, handing each event's type and data to `emit`. */
export async function readEvents(
  body: ReadableStream<Uint8Array>,
  emit: (type: string, data: string) => void,
): Promise<void> {
  const parser = new SseParser(emit);
  const decoder = new TextDecoder();
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    parser.push(decoder.decode(value, { stream: true }));
  }
}

/** Splits SSE text, as it arrives in chunks, into events: `event:` and `data:` lines, blank-ended. */
export class SseParser {
  private buffered = "";
  private type = "message";
  private data: string[] = [];
  private readonly emit: (type: string, data: string) => void;

  constructor(emit: (type: string, data: string) => void) {
    this.emit = emit;
  }

  push(text: string): void {
    const all = this.buffered + text;
    let start = 0;
    let end: number;
    // a chunk of many events is walked once, not copied again for each line
    while ((end = all.indexOf("\n", start)) >= 0) {
      // the daemon ends lines with \n; a \r before it (another server's \r\n) is dropped
      const cut = end > start && all.charCodeAt(end - 1) === 13 ? end - 1 : end;
      this.line(all.slice(start, cut));
      start = end + 1;
    }
    this.buffered = all.slice(start);
  }

  private line(line: string): void {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return; // a comment: keepalives, lost-event notes
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
  }

  private dispatch(): void {
    if (this.data.length) this.emit(this.type, this.data.join("\n"));
    this.type = "message";
    this.data = [];
  }
}
