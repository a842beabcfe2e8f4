// Types of every export of the native addon (native/, built to native/build/Release/moat_native.node).
// The addon is mechanism only: libbpf objects, programs, links, maps, ring buffers, test runs.

/** Options for BpfObject.open. */
export interface OpenOptions {
  /** Directory where maps with `pinning = LIBBPF_PIN_BY_NAME` are pinned/reused. */
  pinRoot?: string;
}

export interface MapInfo {
  name: string;
  /** enum bpf_map_type */
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

export interface ProgramInfo {
  name: string;
  /** ELF section, e.g. "xdp", "tc", "cgroup/connect4" */
  section: string;
  /** enum bpf_prog_type */
  type: number;
  /** enum bpf_attach_type the program expects */
  expectedAttachType: number;
}

export interface TestRunOptions {
  /** Packet (or input) data. */
  data?: Buffer;
  /** Size of the output data buffer; defaults to data.length + 256. */
  dataOutSize?: number;
  /** Context in (e.g. struct xdp_md / __sk_buff bytes). */
  ctx?: Buffer;
  ctxOutSize?: number;
  /** Number of runs (kernel repeat); default 1. */
  repeat?: number;
  flags?: number;
  /** CPU for BPF_F_TEST_RUN_ON_CPU. */
  cpu?: number;
}

export interface TestRunResult {
  /** Program return value (verdict). */
  retval: number;
  /** Average ns per run as reported by the kernel. */
  duration: number;
  dataOut: Buffer;
  ctxOut: Buffer | null;
}

export interface BatchResult {
  keys: Buffer;
  values: Buffer;
  count: number;
  /** Opaque cursor for the next call; null when iteration is complete. */
  next: Buffer | null;
}

export interface CreateMapOptions {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  name?: string;
  flags?: number;
  /** For map-in-map outer maps: an inner map serving as template. */
  innerMap?: BpfMap;
}

export type XdpMode = "native" | "generic" | "offload" | "auto";
export type TcDirection = "ingress" | "egress";

export interface TcAttachOptions {
  /**
   * "auto" (default): a tcx link, or a clsact filter when the kernel has no tcx (EINVAL /
   * EOPNOTSUPP). "tcx": tcx link only. "clsact": clsact filter only.
   */
  mode?: "auto" | "tcx" | "clsact";
}

/** Cgroup attach points by name (mapped to enum bpf_attach_type in the addon). */
export type CgroupAttach =
  | "connect4"
  | "connect6"
  | "sendmsg4"
  | "sendmsg6"
  | "recvmsg4"
  | "recvmsg6"
  | "getpeername4"
  | "getpeername6"
  | "getsockname4"
  | "getsockname6"
  | "sock_ops"
  | "sock_create"
  | "skb_ingress"
  | "skb_egress"
  | "post_bind4"
  | "post_bind6";

export declare class BpfObject {
  /** bpf_object__open_file; nothing is loaded yet. */
  static open(path: string, options?: OpenOptions): BpfObject;
  readonly path: string;
  readonly loaded: boolean;
  maps(): MapInfo[];
  programs(): ProgramInfo[];
  /** Before load: resize a map (bpf_map__set_max_entries). */
  setMaxEntries(map: string, maxEntries: number): void;
  /** Before load: overwrite a global variable in .rodata/.data/.bss by name (size must match). */
  setGlobal(name: string, value: Buffer): void;
  /**
   * Before load: map `name` becomes `existing` (bpf_map__reuse_fd): the programs loaded next
   * share it. Its name becomes the kernel's (cut to 15 characters; map() finds it by either).
   */
  reuseMap(name: string, existing: BpfMap): void;
  /** Before load: disable autoload of a program. */
  setAutoload(program: string, autoload: boolean): void;
  /** Load into the kernel. On failure throws NativeError with `log` = verifier log. */
  load(): void;
  /** A loaded map by name (its own fd: usable after close()). */
  map(name: string): BpfMap;
  /** A loaded program by name (function name; its own fd: usable after close()). */
  program(name: string): BpfProgram;
  /** Unloads programs and maps not held elsewhere (links keep their programs). */
  close(): void;
}

export declare class BpfMap {
  static create(options: CreateMapOptions): BpfMap;
  static openPinned(path: string): BpfMap;
  /** A map by id (an array-of-maps' lookup gives its inner map's id). */
  static openById(id: number): BpfMap;
  readonly name: string;
  readonly fd: number;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  /** Number of values per key for per-CPU maps (possible CPUs), else 1. */
  readonly valuesPerKey: number;
  /** Bytes of one lookup result: valuesPerKey * round_up(valueSize, 8) for per-CPU maps, else valueSize. */
  readonly valueBufferSize: number;
  id(): number;
  lookup(key: Buffer | null): Buffer | null;
  /** lookup() written into `out` (at least valueBufferSize bytes); false when the key is absent. */
  lookupInto(key: Buffer | null, out: Buffer): boolean;
  /** Lookup-and-delete (queues/stacks: key null). */
  lookupAndDelete(key: Buffer | null): Buffer | null;
  update(key: Buffer, value: Buffer, flags?: number): void;
  /** Returns false when the key was absent (ENOENT). */
  delete(key: Buffer): boolean;
  /** Next key after `key` (null = first); null at the end. */
  nextKey(key: Buffer | null): Buffer | null;
  /** keys/values are `count` records packed back to back; returns how many were applied. */
  updateBatch(keys: Buffer, values: Buffer, count: number, flags?: number): number;
  /**
   * Writes entries 0..count-1 of a BPF_F_MMAPABLE array (`values` back to back) through a mapping
   * of its values, before any program reads it; returns `count`.
   */
  writeMapped(values: Buffer, count: number): number;
  /** Returns how many were deleted; a missing key stops the batch there (no error). */
  deleteBatch(keys: Buffer, count: number): number;
  /** One page of a batch lookup; pass `next` back as cursor (hash maps: ENOSPC if maxCount < a bucket). */
  lookupBatch(cursor: Buffer | null, maxCount: number): BatchResult;
  lookupAndDeleteBatch(cursor: Buffer | null, maxCount: number): BatchResult;
  /** Map-in-map: put `inner` at `key` of this outer map (atomic swap of the inner map). */
  setInner(key: Buffer, inner: BpfMap): void;
  pin(path: string): void;
  unpin(path: string): void;
  /** Freeze the map (read-only for user space from now on). */
  freeze(): void;
  /** Closes this handle's fd (the map lives on while pinned or used elsewhere); fd becomes -1. */
  close(): void;
}

export declare class BpfLink {
  static openPinned(path: string): BpfLink;
  /** -1 for non-link attachments (clsact tc filters) and after destroy(). */
  readonly fd: number;
  /** "xdp" | "tcx" | "tc" | "cgroup" | "uprobe" | "iter" | "tracing" | "pinned" */
  readonly kind: string;
  /** Kernel link id; 0 for a clsact tc filter; EBADF after destroy(). */
  id(): number;
  /** Pin at a bpffs path (EOPNOTSUPP for clsact tc filters). */
  pin(path: string): void;
  /** An iterator link's output: the iterator run once, read to its end (EINVAL for other links). */
  readIter(): string;
  /** Replaces the link's program in place (bpf_link_update): the hook is never without one. */
  update(program: BpfProgram): void;
  /** Remove the pin made by pin() (or the one openPinned() opened). */
  unpin(): void;
  /**
   * Detach the program and release the link. Idempotent. A pinned link stays attached
   * until it is unpinned and every handle to it is destroyed.
   */
  destroy(): void;
}

export interface UprobeOptions {
  /** Symbol name in the binary, or use offset. */
  func?: string;
  offset?: number;
  pid?: number;
  retprobe?: boolean;
}

export declare class BpfProgram {
  readonly name: string;
  readonly section: string;
  readonly fd: number;
  readonly type: number;
  id(): number;
  attachXdp(ifindex: number, mode?: XdpMode): BpfLink;
  /** tcx link where the kernel has it, clsact filter otherwise (see TcAttachOptions). */
  attachTc(ifindex: number, direction: TcDirection, options?: TcAttachOptions): BpfLink;
  attachCgroup(cgroupPath: string, attach: CgroupAttach): BpfLink;
  attachUprobe(binaryPath: string, options: UprobeOptions): BpfLink;
  /** A BPF iterator program (SEC("iter/...")): its link's readIter() runs it. */
  attachIter(): BpfLink;
  /** A BTF tracepoint program (SEC("tp_btf/...")) on the tracepoint its section names. */
  attachTracing(): BpfLink;
  testRun(options: TestRunOptions): TestRunResult;
  /** Same as testRun, on the libuv thread pool (the event loop keeps running). */
  testRunAsync(options: TestRunOptions): Promise<TestRunResult>;
  pin(path: string): void;
  /** Closes this handle's program fd (links keep the program attached); fd becomes -1. */
  close(): void;
}

export interface RingBufferOptions {
  /** Most records packed into one batch before JS gets it (default 4096). */
  maxBatch?: number;
}

/**
 * Records reach `onBatch` packed into one Buffer: for each record a little-endian u32 length,
 * then the record bytes, then zero padding to an 8-byte boundary. The Buffer is JS-owned.
 * An exception thrown by `onBatch` propagates out of drain(); during event-loop delivery it
 * becomes an uncaught exception (process "uncaughtException").
 */
export declare class RingBuffer {
  constructor(
    map: BpfMap,
    onBatch: (batch: Buffer, count: number) => void,
    options?: RingBufferOptions,
  );
  /** Consume everything available now, synchronously (delivers batches); returns records consumed. */
  drain(): number;
  /**
   * Stop polling and free the ring. Idempotent. An open RingBuffer keeps itself (and the
   * event loop) alive, like a socket; a batch is delivered per loop turn at most.
   */
  close(): void;
}

/**
 * An rtnetlink socket subscribed to multicast `groups` (RTNLGRP_* numbers), made in the network
 * namespace at `nsPath` when given. `onChange` gets, per wake-up, a bitmask of what changed:
 * 1 link, 2 address, 4 route, 8 rule, 16 the queue overflowed (events lost).
 */
export declare class RtnlWatch {
  constructor(groups: number[], onChange: (kinds: number) => void, nsPath?: string);
  /** Closes the socket. Idempotent. An open watch keeps the event loop alive, like a socket. */
  close(): void;
}

export interface NativeErrorFields {
  /** Stable code: the errno name ("EPERM", "ENOENT", ...) or "EUNKNOWN". */
  code: string;
  errno: number;
  /** The libbpf / syscall operation that failed. */
  op: string;
  /** Verifier / libbpf log captured during the failing call, when there is one. */
  log?: string;
}

/** One map's batch update, for updateBatches. */
export interface MapBatch {
  map: BpfMap;
  keys: Buffer;
  values: Buffer;
  count: number;
}

/** One socket by its exact tuple, for sockDestroy. */
export interface SocketTuple {
  family: 4 | 6;
  /** 6 (tcp) or 17 (udp) */
  protocol: number;
  /** 4 or 16 bytes (IPv4 mapped when family is 4) */
  local: Buffer;
  localPort: number;
  remote: Buffer;
  remotePort: number;
  /** The device a socket is bound to (SO_BINDTODEVICE) must be given to find it; 0: none. */
  ifindex?: number;
  /** The socket cookie, when known: the socket must have it. */
  cookie?: bigint;
}

/** One socket of a sock_diag dump (sockList). */
export interface ListedSocket {
  /** 16 bytes, IPv4 mapped for family 4. */
  local: Buffer;
  localPort: number;
  /** The kernel's TCP state number (a bound UDP socket is 7, TCP_CLOSE). */
  state: number;
  /** The device it is bound to; 0: none. */
  ifindex: number;
  uid: number;
  /** The socket's inode: /proc/PID/fd/N links to socket:[inode]. */
  inode: number;
  cookie: bigint;
  /** The cgroup v2 id it was made in (0 when the kernel does not say). */
  cgroupId: bigint;
}

export interface NetnsSocketSpec {
  type: "udp" | "tcp";
  ip: string;
  port: number;
  listen?: boolean;
  connect?: { ip: string; port: number };
}

export interface NativeAddon {
  BpfObject: typeof BpfObject;
  BpfMap: typeof BpfMap;
  BpfProgram: typeof BpfProgram;
  BpfLink: typeof BpfLink;
  RingBuffer: typeof RingBuffer;
  RtnlWatch: typeof RtnlWatch;
  /** The JS error class the addon throws (set once at load). */
  setErrorClass(ctor: new (message: string, fields: NativeErrorFields) => Error): void;
  /** Number of possible CPUs (libbpf_num_possible_cpus). */
  numPossibleCpus(): number;
  /** This process's network namespace cookie (SO_NETNS_COOKIE). */
  netnsCookie(): bigint;
  /** The inode of the user namespace that owns the namespace at `nsPath` (NS_GET_USERNS). */
  namespaceOwner(nsPath: string): number;
  /**
   * A socket made inside the network namespace at `nsPath` (/proc/PID/ns/net), non-blocking:
   * bound to ip:port, listening (tcp, `listen`) or connecting to `connect` (a tcp connect is
   * still in progress when it returns). The fd is the caller's to wrap or close.
   */
  netnsSocket(nsPath: string, spec: NetnsSocketSpec): { fd: number; port: number; cookie: bigint };
  /** if_nametoindex. */
  ifindex(name: string): number;
  libbpfVersion(): string;
  /** malloc_trim(0): the C heap's free pages back to the system; true when some were. */
  trimMemory(): boolean;
  /**
   * mallopt(M_TRIM_THRESHOLD, trimBytes) and mallopt(M_MMAP_THRESHOLD, mmapBytes): glibc's
   * thresholds fixed (no longer raised by what is unmapped); true when both were taken.
   */
  mallocThresholds(trimBytes: number, mmapBytes: number): boolean;
  /** The XDP attach mode on an interface (bpf_xdp_query). */
  xdpAttachMode(ifindex: number): "native" | "generic" | "offload" | "multi" | "none";
  /**
   * SOCK_DESTROY over NETLINK_SOCK_DIAG (what `ss -K` sends), in this network namespace: the
   * kernel aborts the socket (a waiting connect() fails with ECONNABORTED). True when destroyed,
   * false when there is no such socket; EOPNOTSUPP without CONFIG_INET_DIAG_DESTROY.
   */
  sockDestroy(socket: SocketTuple): boolean;
  /**
   * Batch updates of several maps at once, each on a thread of its own: a map-in-map update waits
   * for an RCU grace period, and grace periods waited side by side cost about one. Throws the first
   * failure (the other maps may be written).
   */
  updateBatches(batches: readonly MapBatch[]): void;
  /**
   * The sockets of one family and protocol whose state is in `states` (bit n: TCP state n), from
   * a SOCK_DIAG_BY_FAMILY dump in this network namespace.
   */
  sockList(family: 4 | 6, protocol: number, states: number): ListedSocket[];
  /** SO_PEERCRED of a connected unix socket `fd`: the peer as the kernel recorded it at connect(). */
  peerCredentials(fd: number): PeerCredentials;
  /**
   * Sets SO_SNDBUF of a unix stream socket `fd` so that about `bytes` of payload fit (the kernel
   * caps it at net.core.wmem_max, doubled); returns SO_SNDBUF after, or 0 for any other kind of
   * socket, left untouched.
   */
  unixSendBuffer(fd: number, bytes: number): number;
  /** Attaches a stream verdict program to a sockmap/sockhash (while the map lives). */
  sockmapAttach(programFd: number, map: BpfMap): void;
  /**
   * Hands two connected TCP sockets of this process, found by their addresses, to the kernel
   * (docs/l7-splice.md); `onEnd` is called once both directions have ended (or one was reset).
   * The caller closes its own handles of both sockets right after.
   */
  /**
   * Hands both sockets to the addon's splice loop; returns the pair's id (for spliceCut) at
   * once. `onStart` says how the loop spliced them, `onEnd` how they ended.
   */
  splicePair(
    options: SplicePairOptions,
    onStart: (start: SpliceStart) => void,
    onEnd: (end: SpliceEnd) => void,
  ): number;
  /** Resets both sides of a spliced pair (a pair that already ended: nothing). */
  spliceCut(id: number): void;
  /**
   * A new non-blocking TCP socket with `record` (struct moat_sock) written to the socket storage
   * map `socks` first: moat's L7 relay's upstream. Returns its fd, for net.Socket({ fd }).
   */
  relaySocket(socks: BpfMap, family: 4 | 6, record: Buffer): number;
}

/** A connected TCP socket by its addresses, as Node reports them. */
export interface SpliceSocket {
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** Its descriptor, when known (checked against the addresses); else found by them. */
  fd?: number;
}

export interface SplicePairOptions {
  client: SpliceSocket;
  upstream: SpliceSocket;
  /** Bytes read from the client that the upstream has not been written yet (sent first). */
  toUpstream: Buffer;
  /** Bytes read from the upstream that the client has not been written yet (sent first). */
  toClient: Buffer;
  /** "sockmap" tries the kernel redirect first, "splice" goes to splice(2) at once. */
  mode: "sockmap" | "splice";
  /** The splice maps of moat.bpf.o (sockmap mode). */
  maps?: { targets: BpfMap; socks: BpfMap; peers: BpfMap };
}

export interface SpliceStart {
  mode: "sockmap" | "splice";
  /** Why the kernel refused the sockmap (then mode is "splice"). */
  refused?: string;
}

export interface SpliceEnd {
  toUpstream: number;
  toClient: number;
  /**
   * closed: FIN both ways; reset: one side was reset (the other is reset too); cut: spliceCut
   * reset both.
   */
  end: "closed" | "reset" | "cut" | "error" | "stopped";
}

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}
