// layer3: does an address match a rule's address list?
//
// A list matches if the address matches some non-negated entry (or the list has only negated
// entries) and matches no negated entry. An empty list matches anything; an empty SET contains
// nothing. Hostname entries match the addresses DNS said they resolve to: with the names of the
// address unknown, such an entry answers "maybe".

import type { IpAddress } from "../config/ip.ts";
import type { AddressEntry, AddressList } from "../config/model.ts";
import { namePattern } from "../config/address-entry.ts";
import { addressIndex, firstHolding, INDEXED_FROM, type AddressIndex } from "./address-index.ts";
import { hostMatch } from "./glob.ts";
import { all, any, maybe, no, not, yes, type Outcome } from "./tri.ts";

export interface AddressFacts {
  address: IpAddress;
  /** As the caller wrote it, for explanations. */
  text: string;
  names?: string[];
}

/** `indexFrom`: lists this long or longer are looked up in an index, shorter ones walked. */
export function matchAddressList(
  list: AddressList,
  side: string,
  facts: AddressFacts,
  indexFrom = INDEXED_FROM,
): Outcome {
  if (list.entries.length === 0) return yes();
  const result = entriesMatch(list.entries, { side, facts, indexFrom }, true);
  if (result.result !== "yes") return result;
  return yes(`${side} ${facts.text} ${result.because.join("")}`);
}

/** `because` is "in X" or "not in X, Y" (for a list of only exclusions). */
function entriesMatch(entries: AddressEntry[], ask: Ask, emptyMatches: boolean): Outcome {
  if (entries.length === 0) return emptyMatches ? yes() : no();
  const { included, excluded } =
    entries.length < ask.indexFrom
      ? walk(entries, ask)
      : lookUp(addressIndex(entries), entries, ask);
  if (!included) {
    const outcome = not(excluded);
    if (outcome.result !== "yes") return outcome;
    const negatives = entries.filter((e) => e.negate);
    return yes(`not in ${negatives.map((e) => e.text.slice(1)).join(" or ")}`);
  }
  const outcome = all([included, not(excluded)]);
  return outcome.result === "yes" ? included : outcome;
}

interface Ask {
  side: string;
  facts: AddressFacts;
  indexFrom: number;
}

/** Whether some entry includes the address (undefined: no entry includes anything), and some excludes it. */
interface Sides {
  included: Outcome | undefined;
  excluded: Outcome;
}

function walk(entries: AddressEntry[], ask: Ask): Sides {
  const positives = entries.filter((e) => !e.negate);
  const negatives = entries.filter((e) => e.negate);
  return {
    included: positives.length === 0 ? undefined : any(positives.map((e) => entryMatch(e, ask))),
    excluded: any(negatives.map((e) => entryMatch(e, ask))),
  };
}

/**
 * The walk's answer from the index: the first entry of a sign that holds the address is the
 * first interval holding it or an earlier other entry (hostname, set) that says yes; with none,
 * the others' "maybe", as the walk's `any` gives it.
 */
function lookUp(index: AddressIndex, entries: AddressEntry[], ask: Ask): Sides {
  const { family, value } = ask.facts.address;
  const pick = (negate: boolean): Outcome | undefined => {
    const at = firstHolding(negate ? index.excluded : index.included, family, value);
    const others = index.others.filter((o) => o.entry.negate === negate);
    const before = others.filter((o) => at < 0 || o.at < at).map((o) => entryMatch(o.entry, ask));
    const hit = before.find((o) => o.result === "yes");
    if (hit) return hit;
    if (at >= 0) return entryMatch(entries[at]!, ask);
    if (!(negate ? index.excluding : index.including)) return undefined;
    return any(before);
  };
  return { included: pick(false), excluded: pick(true) ?? no() };
}

function entryMatch(entry: AddressEntry, ask: Ask): Outcome {
  const { side, facts } = ask;
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
      const member = entriesMatch(entry.entries, ask, false);
      return member.result === "yes" ? yes(`in ${text}`) : member;
    }
  }
}
