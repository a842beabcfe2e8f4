// The clear-text parts of a TLS handshake moat judges: the ClientHello (server name, offered
// versions, ALPN, whether ECH is offered), the ServerHello (chosen version and cipher) and, in
// TLS <= 1.2, the server's Certificate message. Bodies come from HandshakeReader.

import { Cursor, TlsParseError } from "./cursor.ts";

export const HANDSHAKE = { clientHello: 1, serverHello: 2, certificate: 11 };

const EXT = {
  serverName: 0,
  alpn: 16,
  supportedVersions: 43,
  /** draft-ietf-tls-esni: encrypted_client_hello */
  ech: 0xfe0d,
};

const VERSIONS: Record<number, string> = {
  0x0301: "1.0",
  0x0302: "1.1",
  0x0303: "1.2",
  0x0304: "1.3",
};

/** The extensions whose contents moat reads (the others it skips). */
const READ = new Set<number>(Object.values(EXT));

/** RFC 8701: GREASE values (0x?a?a) are sent to keep servers tolerant, never chosen. */
const isGrease = (v: number) => (v & 0x0f0f) === 0x0a0a && v >> 8 === (v & 0xff);

export interface ClientHello {
  sni?: string;
  /** Versions offered, lowest first: supported_versions, else every version up to legacy_version. */
  versions: string[];
  alpn: string[];
  ech: boolean;
}

export interface ServerHello {
  version: string;
  cipher: string;
  /** A HelloRetryRequest: the client sends a second ClientHello. */
  retry: boolean;
}

/** Throws TlsParseError on a truncated or inconsistent body. */
export function parseClientHello(body: Buffer): ClientHello {
  const c = new Cursor(body);
  const legacy = c.uint(2);
  c.bytes(32); // random
  c.vector(1); // session id
  c.vector(2); // cipher suites
  c.vector(1); // compression methods
  const hello: ClientHello = { versions: [], alpn: [], ech: false };
  let offered: number[] | null = null;
  const extensions = c.left > 0 ? c.vector(2) : null;
  const read = new Set<number>();
  while (extensions && extensions.left > 0) {
    const type = extensions.uint(2);
    const data = extensions.vector(2);
    // RFC 8446 4.2 allows each once; a server reading the first of two (an SNI router) and moat
    // the last would judge different names, ALPN lists or versions
    if (READ.has(type) && read.has(type)) throw new TlsParseError(`extension ${type} twice`);
    read.add(type);
    if (type === EXT.serverName) hello.sni = serverName(data);
    else if (type === EXT.alpn) {
      const list = data.vector(2);
      while (list.left > 0) {
        const name = list.vector(1);
        hello.alpn.push(name.bytes(name.left).toString("latin1"));
      }
    } else if (type === EXT.supportedVersions) {
      const list = data.vector(1);
      offered = [];
      while (list.left > 0) offered.push(list.uint(2));
    } else if (type === EXT.ech) hello.ech = true;
  }
  const versions =
    offered ??
    Object.keys(VERSIONS)
      .map(Number)
      .filter((v) => v <= legacy);
  hello.versions = [...new Set(versions.filter((v) => !isGrease(v)).map(versionName))].sort();
  return hello;
}

/** Throws TlsParseError on a truncated or inconsistent body. */
export function parseServerHello(body: Buffer): ServerHello {
  const c = new Cursor(body);
  let version = c.uint(2);
  const random = c.bytes(32);
  c.vector(1); // session id
  const cipher = c.uint(2);
  c.uint(1); // compression
  const extensions = c.left > 0 ? c.vector(2) : null;
  while (extensions && extensions.left > 0) {
    const type = extensions.uint(2);
    const data = extensions.vector(2);
    if (type === EXT.supportedVersions) version = data.uint(2);
  }
  return {
    version: versionName(version),
    cipher: cipherName(cipher),
    retry: random.equals(HELLO_RETRY_RANDOM),
  };
}

/** The certificates of a TLS <= 1.2 Certificate message, leaf first, as DER. */
export function parseCertificates(body: Buffer): Buffer[] {
  const list = new Cursor(body).vector(3);
  const certificates: Buffer[] = [];
  while (list.left > 0) {
    const der = list.vector(3);
    certificates.push(der.bytes(der.left));
  }
  return certificates;
}

/** The one host name of a server_name extension (RFC 6066 3: at most one of a type). */
function serverName(data: Cursor): string | undefined {
  const list = data.vector(2);
  let found: string | undefined;
  while (list.left > 0) {
    const type = list.uint(1);
    const name = list.vector(2);
    if (type !== 0) continue;
    // servers take the first (OpenSSL) or refuse the hello (BoringSSL, Go): never judge one name
    // while the server may read another
    if (found !== undefined) throw new TlsParseError("two host names in server_name");
    found = name.bytes(name.left).toString("latin1");
    // a host name is printable ASCII; anything else is not a name moat can match or report
    if (!/^[\x21-\x7e]{1,255}$/.test(found))
      throw new TlsParseError("server name is not a host name");
  }
  return found;
}

function versionName(v: number): string {
  return VERSIONS[v] ?? `0x${v.toString(16).padStart(4, "0")}`;
}

/** RFC 8446 4.1.3: the ServerHello.random of a HelloRetryRequest. */
const HELLO_RETRY_RANDOM = Buffer.from(
  "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c",
  "hex",
);

const CIPHERS: Record<number, string> = {
  0x1301: "TLS_AES_128_GCM_SHA256",
  0x1302: "TLS_AES_256_GCM_SHA384",
  0x1303: "TLS_CHACHA20_POLY1305_SHA256",
  0xc02b: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
  0xc02c: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
  0xc02f: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
  0xc030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
  0xcca8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
  0xcca9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
  0xc013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
  0xc014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
  0x009c: "TLS_RSA_WITH_AES_128_GCM_SHA256",
  0x009d: "TLS_RSA_WITH_AES_256_GCM_SHA384",
  0x009e: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
  0x009f: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
  0x002f: "TLS_RSA_WITH_AES_128_CBC_SHA",
  0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
};

/** The IANA name of a cipher suite moat knows, else its number ("0xc0ad"). */
function cipherName(v: number): string {
  return CIPHERS[v] ?? `0x${v.toString(16).padStart(4, "0")}`;
}
