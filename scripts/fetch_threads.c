/*
 * fetch_threads.c - the baseline of bench.sh's fetch phase: THREADS blocking threads,
 * each with one libcurl easy handle (so each keeps its connection alive), GET URL
 * until N requests were made between them. Prints "rps=R ok=O failed=F ms=T".
 *
 * Usage: fetch_threads URL N THREADS
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char *url;
static long total;
static atomic_long next, ok, failed;

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	return n;
}

static void *
run(void *arg)
{
	CURL *e = curl_easy_init();
	long code;

	if (e == NULL)
		return NULL;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
	while (atomic_fetch_add(&next, 1) < total) {
		if (curl_easy_perform(e) == CURLE_OK &&
		    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200)
			atomic_fetch_add(&ok, 1);
		else
			atomic_fetch_add(&failed, 1);
	}
	curl_easy_cleanup(e);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct timespec t0, t1;
	pthread_t tid[64];
	int nthreads;
	double ms;

	if (argc != 4 || (total = atol(argv[2])) <= 0 || (nthreads = atoi(argv[3])) <= 0 ||
	    nthreads > 64) {
		fprintf(stderr, "usage: fetch_threads URL N THREADS (1..64)\n");
		return 2;
	}
	url = argv[1];
	curl_global_init(CURL_GLOBAL_DEFAULT);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&tid[i], NULL, run, NULL) != 0)
			return 1;
	for (int i = 0; i < nthreads; i++)
		pthread_join(tid[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("rps=%.0f ok=%ld failed=%ld ms=%.1f\n", (double)atomic_load(&ok) * 1e3 / ms,
	    atomic_load(&ok), atomic_load(&failed), ms);
	return atomic_load(&failed) == 0 ? 0 : 1;
}
