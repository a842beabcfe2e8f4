// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* file_ids.bpf.o: the identity process rules' `path` key gives the regular files the reading
 * process has open, read as the exec record reads it (include/exe_file.h): one line
 * "<fd> <inode> <device> <generation>" a file. User space opens the executables a rule names and
 * reads this instead of stat(), which has no generation and shows overlayfs's layer devices
 * (src/datapath/open-files.ts). An iterator runs in the process that reads it: the files of every
 * other process are skipped. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "exe_file.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define S_IFMT 00170000
#define S_IFREG 0100000

SEC("iter/task_file")
int file_ids(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct moat_exe_key k;

	if (!task || !file || task->tgid != bpf_get_current_pid_tgid() >> 32)
		return 0;
	if ((file->f_inode->i_mode & S_IFMT) != S_IFREG)
		return 0;
	exe_of_file(file, &k);
	BPF_SEQ_PRINTF(ctx->meta->seq, "%u %llu %u %u\n", ctx->fd, k.ino, k.dev, k.gen);
	return 0;
}
