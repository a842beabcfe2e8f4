// moat's version, as `moat --version` and the man pages say it.
export const VERSION = "0.1.0";
