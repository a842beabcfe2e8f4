// How many bytes of each direction of a flow the IDS matches (`ids.bytes`), apart from the
// schema so the code that reads a policy does not load the schema's builder.

/** The most bytes of each direction of a flow the kernel copies (MOAT_IDS_MAX_BYTES). */
export const IDS_MAX_BYTES = 1024;
export const IDS_DEFAULT_BYTES = 512;
