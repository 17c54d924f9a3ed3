/*
 * curl_lazy.h - libcurl, loaded at the first fetch instead of when the worker starts.
 *
 * Linked at load time, libcurl and its ~30 libraries (TLS, HTTP/2, LDAP, Kerberos...)
 * made every worker's exec about 6 ms slower: a cold start, every worker of a
 * 500-function reload. So fetch.c, its one user, includes this header after nothing
 * else of curl: each curl_* call it makes goes through a pointer that
 * curl_lazy_load() fills from dlopen("libcurl.so.4") once. A worker that never
 * fetches never maps it.
 */
#ifndef WK_CURL_LAZY_H
#define WK_CURL_LAZY_H

/* The type-checking macros would hide our redirections below. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

/* X(name, return type, parameters): every libcurl call fetch.c makes. */
#define CURL_LAZY_CALLS(X)                                                        \
	X(curl_global_init, CURLcode, (long))                                     \
	X(curl_easy_init, CURL *, (void))                                         \
	X(curl_easy_setopt, CURLcode, (CURL *, CURLoption, ...))                  \
	X(curl_easy_getinfo, CURLcode, (CURL *, CURLINFO, ...))                   \
	X(curl_easy_reset, void, (CURL *))                                        \
	X(curl_easy_cleanup, void, (CURL *))                                      \
	X(curl_easy_strerror, const char *, (CURLcode))                           \
	X(curl_multi_init, CURLM *, (void))                                       \
	X(curl_multi_setopt, CURLMcode, (CURLM *, CURLMoption, ...))              \
	X(curl_multi_add_handle, CURLMcode, (CURLM *, CURL *))                    \
	X(curl_multi_remove_handle, CURLMcode, (CURLM *, CURL *))                 \
	X(curl_multi_socket_action, CURLMcode, (CURLM *, curl_socket_t, int, int *)) \
	X(curl_multi_assign, CURLMcode, (CURLM *, curl_socket_t, void *))         \
	X(curl_multi_info_read, CURLMsg *, (CURLM *, int *))                      \
	X(curl_multi_cleanup, CURLMcode, (CURLM *))                               \
	X(curl_slist_append, struct curl_slist *, (struct curl_slist *, const char *)) \
	X(curl_slist_free_all, void, (struct curl_slist *))                       \
	X(curl_url, CURLU *, (void))                                              \
	X(curl_url_set, CURLUcode, (CURLU *, CURLUPart, const char *, unsigned int)) \
	X(curl_url_get, CURLUcode, (const CURLU *, CURLUPart, char **, unsigned int)) \
	X(curl_url_cleanup, void, (CURLU *))                                      \
	X(curl_free, void, (void *))

#define CURL_LAZY_FIELD(name, ret, params) ret(*name) params;
struct curl_lazy {
	CURL_LAZY_CALLS(CURL_LAZY_FIELD)
};
#undef CURL_LAZY_FIELD
extern struct curl_lazy curl_lazy;

/* Loads libcurl once; returns 0, or -1 (logged once: the library or a symbol is missing). */
int curl_lazy_load(void);

#ifndef WK_CURL_LAZY_NO_MACROS
/* curl.h wraps these three in argument-count macros: ours replace them. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init		curl_lazy.curl_global_init
#define curl_easy_init			curl_lazy.curl_easy_init
#define curl_easy_setopt		curl_lazy.curl_easy_setopt
#define curl_easy_getinfo		curl_lazy.curl_easy_getinfo
#define curl_easy_reset			curl_lazy.curl_easy_reset
#define curl_easy_cleanup		curl_lazy.curl_easy_cleanup
#define curl_easy_strerror		curl_lazy.curl_easy_strerror
#define curl_multi_init			curl_lazy.curl_multi_init
#define curl_multi_setopt		curl_lazy.curl_multi_setopt
#define curl_multi_add_handle		curl_lazy.curl_multi_add_handle
#define curl_multi_remove_handle	curl_lazy.curl_multi_remove_handle
#define curl_multi_socket_action	curl_lazy.curl_multi_socket_action
#define curl_multi_assign		curl_lazy.curl_multi_assign
#define curl_multi_info_read		curl_lazy.curl_multi_info_read
#define curl_multi_cleanup		curl_lazy.curl_multi_cleanup
#define curl_slist_append		curl_lazy.curl_slist_append
#define curl_slist_free_all		curl_lazy.curl_slist_free_all
#define curl_url			curl_lazy.curl_url
#define curl_url_set			curl_lazy.curl_url_set
#define curl_url_get			curl_lazy.curl_url_get
#define curl_url_cleanup		curl_lazy.curl_url_cleanup
#define curl_free			curl_lazy.curl_free
#endif

#endif
