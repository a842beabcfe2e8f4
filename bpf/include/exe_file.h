/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* An executable file's identity as process rules' `path` key names it: its inode's number,
 * device (the superblock's, MKDEV) and generation, which tells the file from a later one given the
 * same number once it is freed. Read at exec (progs/exe.bpf.c) and by the iterator that tells
 * user space the same for the files it opens (file_ids.bpf.c): the same fields, so a file on
 * overlayfs has the overlay's device and inode, where stat() shows a layer's. */
#ifndef MOAT_EXE_FILE_H
#define MOAT_EXE_FILE_H

#include "vmlinux.h"
#include "moat_abi.h"

/* the generation of an inode that has none (overlayfs, a file made by mkfs -d: 0), so that the
 * kernel never makes a key with generation 0, which in the path classes' table means "not
 * known" (classify.h exe_class) */
#define MOAT_GEN_NONE 0xffffffffu

static __always_inline __u32 exe_gen(struct inode *inode)
{
	__u32 gen = inode->i_generation;

	return gen ? gen : MOAT_GEN_NONE;
}

/* the executable `file` is, into `k` */
static __always_inline void exe_of_file(struct file *file, struct moat_exe_key *k)
{
	struct inode *inode = file->f_inode;

	k->ino = inode->i_ino;
	k->dev = inode->i_sb->s_dev;
	k->gen = exe_gen(inode);
}

#endif /* MOAT_EXE_FILE_H */
