// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Each process's executable, recorded when it execs (include/exe.h): the socket hooks judge
 * `path` rules by this record, not by mm->exe_file, which the process can change. One task
 * storage write per exec and per fork. Part of moat.bpf.o: built by bpf/moat.bpf.c. */
#include <bpf/bpf_tracing.h>
#include "exe.h"

SEC("tp_btf/sched_process_exec")
int BPF_PROG(moat_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	/* exec made the calling thread its group's leader: the record is the process's */
	struct moat_exe_key *rec =
	    bpf_task_storage_get(&exe_ids, p->group_leader, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (rec)
		exe_of_file(bprm->file, rec);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(moat_fork, struct task_struct *parent, struct task_struct *child)
{
	/* a thread shares its leader's record; the child runs only after this returns */
	if (child->pid != child->tgid)
		return 0;
	struct moat_exe_key *from = bpf_task_storage_get(&exe_ids, parent->group_leader, 0, 0);
	if (!from)
		return 0;
	struct moat_exe_key *to =
	    bpf_task_storage_get(&exe_ids, child, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (to)
		*to = *from;
	return 0;
}
