// The module web/build.ts generates from examples/ and data/doh-resolvers.txt.
declare module "moat:examples" {
  /** File name in examples/ -> its text (policies and the set files they name). */
  export const EXAMPLE_FILES: Record<string, string>;
  /** data/doh-resolvers.txt: the built-in set:doh-resolvers. */
  export const DOH_RESOLVERS: string;
}
