// A DNS server that says every name it is asked is an alias of another, and gives an address of
// the asked name itself: `node cname-spoof-dns.ts LISTEN TARGET ADDRESS` answers each A query for
// Q over UDP port 53 with `Q CNAME TARGET` and `Q A ADDRESS` (as the server of a domain its
// owner runs can answer, and forwarders pass on). Any other query: NOERROR, no records.
import { createSocket } from "node:dgram";
import dnsPacket from "dns-packet";

const [listen = "", target = "", address = ""] = process.argv.slice(2);

function answerTo(query: dnsPacket.Packet): Buffer {
  const q = query.questions?.[0];
  const answers: dnsPacket.Answer[] =
    q?.type === "A"
      ? [
          { type: "CNAME", name: q.name, ttl: 60, data: target },
          { type: "A", name: q.name, ttl: 60, data: address },
        ]
      : [];
  return dnsPacket.encode({
    type: "response",
    id: query.id ?? 0,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: query.questions ?? [],
    answers,
  });
}

const sock = createSocket("udp4");
sock.on("message", (msg, from) => {
  let query: dnsPacket.Packet;
  try {
    query = dnsPacket.decode(msg);
  } catch {
    return;
  }
  sock.send(answerTo(query), from.port, from.address);
});
sock.bind(53, listen, () => process.stdout.write("listening\n"));
