// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The verifier's work for each program of an object, loaded as the daemon loads it (limit_cpus
 * set to the machine's possible CPUs): instructions processed, states, time, from the kernel's
 * statistics log (log level 4). Usage: verifier-stats OBJECT [PROGRAM LOG]: with PROGRAM, that
 * program's whole verifier log (level 2: every instruction walked, with its source line) goes to
 * the file LOG, to find where the walk spends its instructions. */
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PROGS 64
#define STATS_LOG (1 << 16)
#define FULL_LOG ((1u << 30) - 1)

static char stats[MAX_PROGS][STATS_LOG];

static int quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, args) : 0;
}

static int ends_with(const char *s, const char *end)
{
	size_t n = strlen(s), m = strlen(end);
	return n >= m && !strcmp(s + n - m, end);
}

/* limit_cpus in the object's .rodata, as src/datapath/datapath.ts sets it */
static void set_limit_cpus(struct bpf_object *obj)
{
	struct btf *btf = bpf_object__btf(obj);
	struct bpf_map *map;

	bpf_object__for_each_map(map, obj)
	{
		if (!ends_with(bpf_map__name(map), ".rodata"))
			continue;
		int id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
		if (id < 0)
			return;
		size_t size;
		const void *init = bpf_map__initial_value(map, &size);
		char *copy = malloc(size);
		memcpy(copy, init, size);
		const struct btf_type *sec = btf__type_by_id(btf, id);
		const struct btf_var_secinfo *v = btf_var_secinfos(sec);
		for (int i = 0; i < btf_vlen(sec); i++, v++) {
			const struct btf_type *var = btf__type_by_id(btf, v->type);
			if (!strcmp(btf__name_by_offset(btf, var->name_off), "limit_cpus") &&
			    v->offset + 4 <= size)
				*(unsigned int *)(copy + v->offset) = libbpf_num_possible_cpus();
		}
		bpf_map__set_initial_value(map, copy, size);
		free(copy);
		return;
	}
}

int main(int argc, char **argv)
{
	if (argc != 2 && argc != 4) {
		fprintf(stderr, "usage: %s OBJECT [PROGRAM LOG]\n", argv[0]);
		return 2;
	}
	libbpf_set_print(quiet);
	struct bpf_object *obj = bpf_object__open(argv[1]);
	if (!obj) {
		perror(argv[1]);
		return 1;
	}
	set_limit_cpus(obj);

	struct bpf_program *prog, *full = NULL;
	char *full_log = NULL;
	int i = 0;
	bpf_object__for_each_program(prog, obj)
	{
		if (i == MAX_PROGS)
			break;
		if (argc == 4 && !strcmp(bpf_program__name(prog), argv[2])) {
			full = prog;
			full_log = calloc(1, FULL_LOG);
			bpf_program__set_log_level(prog, 2 | 4);
			bpf_program__set_log_buf(prog, full_log, FULL_LOG);
		} else {
			bpf_program__set_log_level(prog, 4);
			bpf_program__set_log_buf(prog, stats[i], STATS_LOG);
		}
		i++;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int err = bpf_object__load(obj);
	clock_gettime(CLOCK_MONOTONIC, &t1);

	long total_insns = 0, total_us = 0;
	i = 0;
	bpf_object__for_each_program(prog, obj)
	{
		if (i == MAX_PROGS)
			break;
		const char *log = prog == full ? full_log : stats[i++];
		long us = 0, insns = 0, states = 0, peak = 0;
		const char *s = strstr(log, "verification time");
		if (s)
			sscanf(s, "verification time %ld", &us);
		s = strstr(log, "processed ");
		if (s)
			sscanf(s,
			       "processed %ld insns (limit %*d) max_states_per_insn %*d "
			       "total_states %ld "
			       "peak_states %ld",
			       &insns, &states, &peak);
		if (bpf_program__autoload(prog))
			printf("%-24s insns %8ld  verify_ms %8.1f  states %6ld  peak %6ld\n",
			       bpf_program__name(prog), insns, us / 1000.0, states, peak);
		total_insns += insns;
		total_us += us;
		if (prog == full) {
			FILE *f = fopen(argv[3], "w");
			if (f) {
				fputs(full_log, f);
				fclose(f);
			}
		}
	}
	printf("%-24s insns %8ld  verify_ms %8.1f  object load %.0f ms%s\n", "total", total_insns,
	       total_us / 1000.0, (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
	       err ? " (FAILED)" : "");
	return err ? 1 : 0;
}
