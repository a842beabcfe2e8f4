// Certificates made for a test with openssl: a root CA, an intermediate, and leaves signed by the
// intermediate with chosen names and dates; a self-signed leaf. Files in a fresh temp directory.

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCertificates {
  dir: string;
  /** PEM of the root (the trust anchor a test gives moat). */
  root: string;
  /** The intermediate, to send after a leaf (s_server -cert_chain). */
  intermediate: string;
  /** A leaf: its certificate and key files. */
  leaf(name: string): { cert: string; key: string };
  remove(): void;
}

export interface LeafSpec {
  name: string;
  cn: string;
  /** openssl ca dates, YYMMDDHHMMSSZ; default: now for 90 days. */
  start?: string;
  end?: string;
  days?: number;
  selfSigned?: boolean;
}

const run = (dir: string, args: string[]) =>
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

export function makeCertificates(leaves: LeafSpec[]): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), "moat-tls-"));
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "serial"), "1000\n");
  writeFileSync(
    join(dir, "ca.cnf"),
    `[ca]
default_ca = test
[test]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = copy
email_in_dn = no
[any]
commonName = supplied
organizationName = optional
[intermediate]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
[leaf]
basicConstraints = CA:FALSE
`,
  );
  run(dir, [
    "req",
    "-x509",
    ...EC,
    "-keyout",
    "root.key",
    "-out",
    "root.pem",
    "-days",
    "3650",
    "-subj",
    "/O=moat tests/CN=moat test root",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  run(dir, [
    "req",
    "-new",
    ...EC,
    "-keyout",
    "inter.key",
    "-out",
    "inter.csr",
    "-subj",
    "/O=moat tests/CN=moat test intermediate",
  ]);
  run(dir, [
    "ca",
    "-batch",
    "-config",
    "ca.cnf",
    "-cert",
    "root.pem",
    "-keyfile",
    "root.key",
    "-in",
    "inter.csr",
    "-out",
    "inter.pem",
    "-notext",
    "-days",
    "3650",
    "-extensions",
    "intermediate",
  ]);
  for (const leaf of leaves) {
    const subject = ["-subj", `/CN=${leaf.cn}`, "-addext", `subjectAltName=DNS:${leaf.cn}`];
    if (leaf.selfSigned) {
      run(dir, [
        "req",
        "-x509",
        ...EC,
        "-keyout",
        `${leaf.name}.key`,
        "-out",
        `${leaf.name}.pem`,
        "-days",
        "90",
        ...subject,
      ]);
      continue;
    }
    run(dir, [
      "req",
      "-new",
      ...EC,
      "-keyout",
      `${leaf.name}.key`,
      "-out",
      `${leaf.name}.csr`,
      ...subject,
    ]);
    const dates =
      leaf.start && leaf.end
        ? ["-startdate", leaf.start, "-enddate", leaf.end]
        : ["-days", String(leaf.days ?? 90)];
    run(dir, [
      "ca",
      "-batch",
      "-config",
      "ca.cnf",
      "-cert",
      "inter.pem",
      "-keyfile",
      "inter.key",
      "-in",
      `${leaf.name}.csr`,
      "-out",
      `${leaf.name}.pem`,
      "-notext",
      "-extensions",
      "leaf",
      ...dates,
    ]);
  }
  return {
    dir,
    root: join(dir, "root.pem"),
    intermediate: join(dir, "inter.pem"),
    leaf: (name) => ({ cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) }),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
