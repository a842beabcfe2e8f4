// What a TLS ClientHello says in the clear (RFC 8446 section 4.1.2): the server name (SNI), the
// ALPN protocols, the TLS versions offered, and whether it carries Encrypted Client Hello (then
// the SNI read here is the outer, public one). A minimal reader for QUIC's CRYPTO stream, which
// holds handshake messages without TLS records.
import { Reader } from "./reader.ts";

export interface ClientHelloFacts {
  /** The server_name extension's host name, lower-cased; absent when it has none. */
  sni?: string;
  alpn: string[];
  /** TLS versions offered, e.g. ["1.3"] (supported_versions, else the legacy version). */
  versions: string[];
  /** An encrypted_client_hello extension is present. */
  ech: boolean;
}

const CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0x0000;
const EXT_ALPN = 0x0010;
const EXT_SUPPORTED_VERSIONS = 0x002b;
const EXT_ECH = 0xfe0d;

const versionName = (v: number): string =>
  v >= 0x0301 && v <= 0x0304 ? `1.${v - 0x0301}` : `0x${v.toString(16).padStart(4, "0")}`;

/** Whether `bytes` start with a whole ClientHello message: its length, else undefined. */
export function clientHelloLength(bytes: Buffer): number | undefined {
  if (bytes.length < 4 || bytes[0] !== CLIENT_HELLO) return undefined;
  const length = 4 + bytes.readUIntBE(1, 3);
  return bytes.length >= length ? length : undefined;
}

/** Parses a whole ClientHello handshake message (type, u24 length, body); undefined if malformed. */
export function parseClientHello(message: Buffer): ClientHelloFacts | undefined {
  const r = new Reader(message);
  const length = r.u8() === CLIENT_HELLO ? r.u24() : undefined;
  const body = length === undefined ? undefined : r.sub(length);
  if (!body) return undefined;
  const legacy = body.u16();
  if (legacy === undefined || !body.bytes(32)) return undefined;
  const session = body.u8();
  const suites = session === undefined || !body.bytes(session) ? undefined : body.u16();
  const compression = suites === undefined || !body.bytes(suites) ? undefined : body.u8();
  if (compression === undefined || !body.bytes(compression)) return undefined;
  const facts: ClientHelloFacts = { alpn: [], versions: [versionName(legacy)], ech: false };
  if (body.left === 0) return facts;
  const extLength = body.u16();
  const exts = extLength === undefined ? undefined : body.sub(extLength);
  if (!exts) return undefined;
  while (exts.left > 0) {
    const type = exts.u16();
    const size = exts.u16();
    const ext = size === undefined ? undefined : exts.sub(size);
    if (type === undefined || !ext) return undefined;
    if (type === EXT_SERVER_NAME) facts.sni = serverName(ext) ?? facts.sni;
    else if (type === EXT_ALPN) facts.alpn = alpn(ext);
    else if (type === EXT_SUPPORTED_VERSIONS) facts.versions = versions(ext) ?? facts.versions;
    else if (type === EXT_ECH) facts.ech = true;
  }
  return facts;
}

function serverName(r: Reader): string | undefined {
  const list = r.u16();
  const names = list === undefined ? undefined : r.sub(list);
  while (names && names.left > 0) {
    const kind = names.u8();
    const n = names.u16();
    const name = n === undefined ? undefined : names.bytes(n);
    if (kind === undefined || !name) return undefined;
    // host_name: ASCII (A-labels); anything else is not a name moat can report
    if (kind === 0 && /^[\x21-\x7e]{1,253}$/.test(name.toString("latin1")))
      return name.toString("ascii").toLowerCase();
  }
  return undefined;
}

function alpn(r: Reader): string[] {
  const list = r.u16();
  const protos = list === undefined ? undefined : r.sub(list);
  const out: string[] = [];
  while (protos && protos.left > 0) {
    const n = protos.u8();
    const p = n === undefined ? undefined : protos.bytes(n);
    if (!p) break;
    out.push(p.toString("latin1"));
  }
  return out;
}

function versions(r: Reader): string[] | undefined {
  const n = r.u8();
  const list = n === undefined ? undefined : r.sub(n);
  if (!list) return undefined;
  const out: string[] = [];
  for (let v = list.u16(); v !== undefined; v = list.u16())
    // GREASE values (0x?a?a) are not versions
    if ((v & 0x0f0f) !== 0x0a0a) out.push(versionName(v));
  return out;
}
