// The peers of bench/dns-proxy-cpu.ts, in a process of their own (their CPU is not the proxy's):
//   node bench/dns-proxy-peer.ts upstream          a DNS server on 127.0.0.1 (prints its port):
//                                                  A for every name (h<i>.bench.test ->
//                                                  10.240.x.y), a CNAME for www.*, NXDOMAIN for nx.*
//   node bench/dns-proxy-peer.ts sequence PORT     600 fixed queries one at a time; prints the
//                                                  answers (hex, JSON)
//   node bench/dns-proxy-peer.ts load PORT SECONDS 50 queries outstanding; prints the answered count
import { createSocket, type Socket } from "node:dgram";
import dnsPacket from "dns-packet";

const [mode = "", portArg = "0", secondsArg = "5"] = process.argv.slice(2);

const addressOf = (n: number) => `10.240.${Math.floor(n / 250) % 256}.${1 + (n % 250)}`;

function query(id: number, name: string): Buffer {
  return dnsPacket.encode({
    id,
    type: "query",
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: "A", name }],
  });
}

function upstream(): void {
  const s = createSocket("udp4");
  s.on("message", (msg, r) => {
    const q = dnsPacket.decode(msg);
    const question = q.questions?.[0];
    if (!question) return;
    const name = question.name;
    const ip = addressOf(Number(/\d+/.exec(name)?.[0] ?? 0));
    let answers: dnsPacket.Answer[] = [{ type: "A", name, ttl: 300, data: ip }];
    if (name.startsWith("www."))
      answers = [
        { type: "CNAME", name, ttl: 300, data: name.slice(4) },
        { type: "A", name: name.slice(4), ttl: 300, data: ip },
      ];
    const nx = name.startsWith("nx.");
    const reply = dnsPacket.encode({
      id: q.id ?? 0,
      type: "response",
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (nx ? 3 : 0),
      questions: q.questions ?? [],
      answers: nx ? [] : answers,
    });
    s.send(reply, r.port, r.address);
  });
  s.bind(0, "127.0.0.1", () => console.log(s.address().port));
}

/** Plain names (mixed case, a trailing dot), a blocked one, a CNAME, NXDOMAIN, the DoH canary. */
function sequenceName(i: number): string {
  if (i % 10 === 3) return "ads.moat.test";
  if (i % 10 === 5) return `www.h${i % 37}.bench.test`;
  if (i % 10 === 7) return `nx.h${i}.bench.test`;
  if (i % 10 === 9) return "use-application-dns.net";
  return `H${i % 50}.Bench.Test.`;
}

async function sequence(s: Socket, port: number): Promise<void> {
  const out: string[] = [];
  for (let i = 0; i < 600; i++) {
    const reply = await new Promise<Buffer>((resolve) => {
      s.once("message", resolve);
      s.send(query(i + 1, sequenceName(i)), port, "127.0.0.1");
    });
    out.push(reply.toString("hex"));
  }
  console.log(JSON.stringify(out));
}

function load(s: Socket, port: number, seconds: number): void {
  let answered = 0;
  let id = 0;
  let outstanding = 50;
  const end = performance.now() + seconds * 1000;
  const send = () => {
    id = (id + 1) & 0xffff;
    s.send(query(id, `h${id % 1000}.bench.test`), port, "127.0.0.1");
  };
  s.on("message", () => {
    answered++;
    if (performance.now() < end) send();
    else if (--outstanding === 0) {
      console.log(answered);
      process.exit(0);
    }
  });
  for (let i = 0; i < outstanding; i++) send();
}

if (mode === "upstream") upstream();
else {
  const s = createSocket("udp4");
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
  if (mode === "sequence") {
    await sequence(s, Number(portArg));
    s.close();
  } else load(s, Number(portArg), Number(secondsArg));
}
