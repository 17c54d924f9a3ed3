/*
 * pq_lazy.h - libpq, loaded when a PostgreSQL durable store is first opened instead
 * of when the process starts.
 *
 * Linked at load time, libpq and its ~20 libraries (TLS, Kerberos, LDAP, SASL...)
 * tripled the exec time of every worker, whether its function uses PostgreSQL or
 * not: a 500-function start went from 0.6 to 1.7 s, and each cold start paid it. So
 * durable_pg.c, its one user, includes this header instead of naming libpq's calls:
 * each PQ* call goes through a pointer that pq_lazy_load() fills from
 * dlopen("libpq.so.5") once. A process that never opens such a store never maps it.
 */
#ifndef WK_PQ_LAZY_H
#define WK_PQ_LAZY_H

#include <stddef.h>

#include <libpq-fe.h>

/* X(name, return type, parameters): every libpq call durable_pg.c makes. */
#define PQ_LAZY_CALLS(X)                                                          \
	X(PQclear, void, (PGresult *))                                            \
	X(PQgetvalue, char *, (const PGresult *, int, int))                       \
	X(PQgetisnull, int, (const PGresult *, int, int))                         \
	X(PQntuples, int, (const PGresult *))                                     \
	X(PQstatus, ConnStatusType, (const PGconn *))                             \
	X(PQconsumeInput, int, (PGconn *))                                        \
	X(PQresultStatus, ExecStatusType, (const PGresult *))                     \
	X(PQfinish, void, (PGconn *))                                             \
	X(PQerrorMessage, char *, (const PGconn *))                               \
	X(PQcmdTuples, char *, (PGresult *))                                      \
	X(PQsendQuery, int, (PGconn *, const char *))                             \
	X(PQsendQueryParams, int, (PGconn *, const char *, int, const Oid *,      \
	    const char *const *, const int *, const int *, int))                  \
	X(PQresultErrorMessage, char *, (const PGresult *))                       \
	X(PQresultErrorField, char *, (const PGresult *, int))                    \
	X(PQisBusy, int, (PGconn *))                                              \
	X(PQgetResult, PGresult *, (PGconn *))                                    \
	X(PQfreemem, void, (void *))                                              \
	X(PQconnectStartParams, PGconn *, (const char *const *, const char *const *, int)) \
	X(PQconnectPoll, PostgresPollingStatusType, (PGconn *))                   \
	X(PQunescapeBytea, unsigned char *, (const unsigned char *, size_t *))    \
	X(PQtransactionStatus, PGTransactionStatusType, (const PGconn *))         \
	X(PQsocket, int, (const PGconn *))                                        \
	X(PQsetnonblocking, int, (PGconn *, int))                                 \
	X(PQsetNoticeProcessor, PQnoticeProcessor, (PGconn *, PQnoticeProcessor, void *)) \
	X(PQflush, int, (PGconn *))

struct pq_lazy {
#define PQ_LAZY_PTR(name, ret, params) ret (*name) params;
	PQ_LAZY_CALLS(PQ_LAZY_PTR)
#undef PQ_LAZY_PTR
};
extern struct pq_lazy pq_lazy;

/* Loads libpq once: 0, or -1 with a reason in ERR (then no PQ* call may be made). */
int pq_lazy_load(char *err, size_t errlen);

#ifndef WK_PQ_LAZY_NO_MACROS
#define PQclear              pq_lazy.PQclear
#define PQgetvalue           pq_lazy.PQgetvalue
#define PQgetisnull          pq_lazy.PQgetisnull
#define PQntuples            pq_lazy.PQntuples
#define PQstatus             pq_lazy.PQstatus
#define PQconsumeInput       pq_lazy.PQconsumeInput
#define PQresultStatus       pq_lazy.PQresultStatus
#define PQfinish             pq_lazy.PQfinish
#define PQerrorMessage       pq_lazy.PQerrorMessage
#define PQcmdTuples          pq_lazy.PQcmdTuples
#define PQsendQuery          pq_lazy.PQsendQuery
#define PQsendQueryParams    pq_lazy.PQsendQueryParams
#define PQresultErrorMessage pq_lazy.PQresultErrorMessage
#define PQresultErrorField   pq_lazy.PQresultErrorField
#define PQisBusy             pq_lazy.PQisBusy
#define PQgetResult          pq_lazy.PQgetResult
#define PQfreemem            pq_lazy.PQfreemem
#define PQconnectStartParams pq_lazy.PQconnectStartParams
#define PQconnectPoll        pq_lazy.PQconnectPoll
#define PQunescapeBytea      pq_lazy.PQunescapeBytea
#define PQtransactionStatus  pq_lazy.PQtransactionStatus
#define PQsocket             pq_lazy.PQsocket
#define PQsetnonblocking     pq_lazy.PQsetnonblocking
#define PQsetNoticeProcessor pq_lazy.PQsetNoticeProcessor
#define PQflush              pq_lazy.PQflush
#endif

#endif
