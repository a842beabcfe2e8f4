// layer3: does an address match a rule's address list?
//
// A list matches if the address matches some non-negated entry (or the list has only negated
// entries) and matches no negated entry. An empty list matches anything; an empty SET contains
// nothing. Hostname entries match the addresses DNS said they resolve to: with the names of the
// address unknown, such an entry answers "maybe".

import type { IpAddress } from "../config/ip.ts";
import type { AddressEntry, AddressList } from "../config/model.ts";
import { namePattern } from "../config/address-entry.ts";
import { hostMatch } from "./glob.ts";
import { all, any, maybe, no, not, yes, type Outcome } from "./tri.ts";

export interface AddressFacts {
  address: IpAddress;
  /** As the caller wrote it, for explanations. */
  text: string;
  names?: string[];
}

export function matchAddressList(list: AddressList, side: string, facts: AddressFacts): Outcome {
  if (list.entries.length === 0) return yes();
  const result = entriesMatch(list.entries, side, facts, true);
  if (result.result !== "yes") return result;
  return yes(`${side} ${facts.text} ${result.because.join("")}`);
}

/** `because` is "in X" or "not in X, Y" (for a list of only exclusions). */
function entriesMatch(
  entries: AddressEntry[],
  side: string,
  facts: AddressFacts,
  emptyMatches: boolean,
): Outcome {
  if (entries.length === 0) return emptyMatches ? yes() : no();
  const positives = entries.filter((e) => !e.negate);
  const negatives = entries.filter((e) => e.negate);
  const excluded = any(negatives.map((e) => entryMatch(e, side, facts)));
  if (positives.length === 0) {
    const outcome = not(excluded);
    if (outcome.result !== "yes") return outcome;
    return yes(`not in ${negatives.map((e) => e.text.slice(1)).join(" or ")}`);
  }
  const included = any(positives.map((e) => entryMatch(e, side, facts)));
  const outcome = all([included, not(excluded)]);
  return outcome.result === "yes" ? included : outcome;
}

function entryMatch(entry: AddressEntry, side: string, facts: AddressFacts): Outcome {
  const { family, value } = facts.address;
  const text = entry.negate ? entry.text.slice(1) : entry.text;
  switch (entry.kind) {
    case "interval":
      return entry.family === family && entry.start <= value && value <= entry.end
        ? yes(`in ${text}`)
        : no();
    case "hostname": {
      if (!facts.names) return maybe(`DNS names of the ${side} address`);
      const pattern = namePattern(entry);
      return facts.names.some((n) => hostMatch(pattern, n)) ? yes(`in ${text} (DNS)`) : no();
    }
    case "set": {
      const member = entriesMatch(entry.entries, side, facts, false);
      return member.result === "yes" ? yes(`in ${text}`) : member;
    }
  }
}
