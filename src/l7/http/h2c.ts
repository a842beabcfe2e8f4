export function serveH2c(): Promise<void> { throw new Error("todo"); }
