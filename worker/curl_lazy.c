/*
 * curl_lazy.c - loads libcurl at the first fetch (see curl_lazy.h for why). Not
 * including curl_lazy.h's redirections: this file names the real symbols.
 */
#include <dlfcn.h>
#include <stdbool.h>

#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include "../common/log.h"

/* The same list and struct as curl_lazy.h, without its macros. */
#define WK_CURL_LAZY_NO_MACROS
#include "curl_lazy.h"

struct curl_lazy curl_lazy;

int
curl_lazy_load(void)
{
	static bool tried, loaded;
	const char *missing = NULL;
	void *h;

	if (tried)
		return loaded ? 0 : -1;
	tried = true;
	/* RTLD_LOCAL: its symbols stay out of the function's namespace. */
	if ((h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL)) == NULL) {
		log_error("fetch_unavailable", "msg=%s", log_qv(dlerror()));
		return -1;
	}
#define CURL_LAZY_SYM(name, ret, params)                                          \
	if (missing == NULL &&                                                    \
	    (*(void **)&curl_lazy.name = dlsym(h, #name)) == NULL)                \
		missing = #name;
	CURL_LAZY_CALLS(CURL_LAZY_SYM)
#undef CURL_LAZY_SYM
	if (missing != NULL) {
		log_error("fetch_unavailable", "msg=\"libcurl.so.4 has no %s\"", missing);
		dlclose(h);
		return -1;
	}
	loaded = true;
	return 0;
}
