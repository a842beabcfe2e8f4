// Lists of address entries known to hold addresses only (no hostnames, no sets): a big set's
// entries handed back from the accept worker are made only when read, and a reader that looks
// for hostnames in them asks here instead of making a million entries to look at their kinds.
const addressOnlyLists = new WeakSet<object>();

/** Records that `list` holds address entries only. */
export function markAddressOnly(list: readonly unknown[]): void {
  addressOnlyLists.add(list);
}

/** Whether `list` is known to hold address entries only (false: not known, look at them). */
export function isAddressOnly(list: readonly unknown[]): boolean {
  return addressOnlyLists.has(list);
}
