/* B4 client (bench/connect.ts): COUNT non-blocking TCP connect() calls to 127.0.0.1:PORT, each
 * on a new socket, timed with clock_gettime around connect() alone; with DESTS, the calls go to
 * DESTS addresses in turn (127.0.0.1 and the ones after it). Prints one line per call:
 * "<ns> <errno>" (errno 0 when connect() returned 0). Built by the bench into a temp dir, so
 * the executable's name (its comm) is the one the policy names. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: %s PORT COUNT [DESTS]\n", argv[0]);
		return 2;
	}
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
	long count = atol(argv[2]);
	long dests = argc == 4 ? atol(argv[3]) : 1;
	long *ns = calloc(count, sizeof(*ns));
	int *err = calloc(count, sizeof(*err));

	if (!ns || !err)
		return 1;
	for (long i = 0; i < count; i++) {
		int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		struct timespec a, b;

		if (s < 0) {
			perror("socket");
			return 1;
		}
		to.sin_addr.s_addr = htonl(INADDR_LOOPBACK + (uint32_t)(i % dests));
		clock_gettime(CLOCK_MONOTONIC, &a);
		int rc = connect(s, (struct sockaddr *)&to, sizeof(to));
		clock_gettime(CLOCK_MONOTONIC, &b);
		err[i] = rc == 0 ? 0 : errno;
		ns[i] = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
		close(s);
	}
	/* printed after the loop: stdout writes stay out of the timed calls */
	for (long i = 0; i < count; i++)
		printf("%ld %d\n", ns[i], err[i]);
	return 0;
}
