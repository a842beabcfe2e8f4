// Changed executables: the content (sha256) of each executable path behind connections, and one
// `exe_changed` event when it changes (docs/anomaly.md, "Changed executables").
export { ExeLedger, MAX_EXE_PATHS, type ExePathEntry } from "./exe-ledger.ts";
export { ExeWatch, type ExeWatchOptions } from "./exe-watch.ts";
export { exeChangedEvent } from "./exe-event.ts";
