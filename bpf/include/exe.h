/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A process's executable, as process rules' `path` key names it (inode, device, generation): the
 * one it exec'd, recorded at exec in its thread group leader's task storage (exe_ids, written by
 * progs/exe.bpf.c) and inherited by fork children. mm->exe_file is not trusted: an
 * unprivileged process can repoint it (a user namespace's CAP_SYS_ADMIN is all
 * prctl(PR_SET_MM_MAP) asks). A process older than moat's programs has no record: its
 * current mapping is read instead (docs/attribution.md). */
#ifndef MOAT_EXE_H
#define MOAT_EXE_H

#include "maps.h"
#include "exe_file.h"

/* the only reader of a task's executable: every hook that needs it asks here */
static __always_inline void task_exe(struct task_struct *task, __u64 *ino, __u32 *dev, __u32 *gen)
{
	/* the current mapping read first, the record after: one load of each (the verifier
	 * refuses a load shared by a map value and a kernel pointer). BTF loads: a missing
	 * pointer on the way (a kernel thread's mm) reads as 0 */
	struct inode *inode = task->mm->exe_file->f_inode;
	__u64 i = inode->i_ino;
	__u32 d = inode->i_sb->s_dev;
	__u32 g = exe_gen(inode);
	struct moat_exe_key *rec = bpf_task_storage_get(&exe_ids, task->group_leader, 0, 0);

	if (rec) {
		i = rec->ino;
		d = rec->dev;
		g = rec->gen;
	}
	*ino = i;
	*dev = d;
	*gen = g;
}

#endif /* MOAT_EXE_H */
