// Device numbers as the socket hooks record them: an executable's device is its superblock's
// s_dev (the kernel's internal dev_t), which stat() returns re-encoded for user space.

/** The kernel's dev_t (MKDEV: major << 20 | minor) from stat's (new_encode_dev). */
export function kernelDev(dev: number): number {
  const major = (dev >>> 8) & 0xfff;
  const minor = (dev & 0xff) | ((dev >>> 12) & 0xfff00);
  return ((major << 20) | minor) >>> 0;
}
